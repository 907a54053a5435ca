"""Which base models a client may name, and what local model each one runs on.

Clients name Vertex models ("gemini-2.5-flash", "publishers/google/models/gemini-2.5-pro")
or "smollm2". A client never names a folder or a Hugging Face id: that would let a request make
the service read an arbitrary path. Only the operator's --base-model may do that.
"""

from __future__ import annotations

import re
from pathlib import Path

from include.local_vertex.config import ServiceConfig
from include.local_vertex.errors import invalid_argument

_PREFIXES = ("publishers/google/models/", "models/")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,127}$")
BUNDLED = "smollm2"


def canonical_base_model(name: str) -> str:
    """The bare model id of an accepted name; ApiError(400) for anything else."""
    bare = name
    for prefix in _PREFIXES:
        if bare.startswith(prefix):
            bare = bare[len(prefix):]
    if not _NAME.match(bare) or not (bare.startswith("gemini-") or bare == BUNDLED):
        raise invalid_argument(
            f"unknown base model {name!r}: the local service tunes gemini-* model names "
            f"(mapped to a local model) and {BUNDLED!r}"
        )
    return bare


def local_base_model(name: str, config: ServiceConfig) -> str:
    """The folder or id the engine loads for an accepted name (may convert the bundled GGUF once)."""
    bare = canonical_base_model(name)
    if config.base_model and bare.startswith("gemini-"):
        return config.base_model
    from include.tuning_engine.models import resolve_base_model

    return resolve_base_model(bare, Path(config.models_dir))
