"""The local tuning engine: LoRA supervised tuning and generation for the local Vertex service.

Kept light: import the modules you need (spec, trainer, generation, models, tiny, recommended);
torch and transformers load only inside their functions.
"""
