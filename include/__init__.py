"""Non-Airflow code: the local Vertex service, the tuning engine, sample data."""
