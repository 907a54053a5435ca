"""Provider-style Airflow package for supervised tuning of Gemini models (Vertex AI or the local service)."""
