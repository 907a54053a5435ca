"""Epoch checkpoints: enough state to resume a run exactly where it stopped.

One file per checkpoint (adapter weights, optimizer, step, epoch, RNG states), written to a
temporary name and renamed, so a crash never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from dataclasses import asdict
from pathlib import Path

from include.tuning_engine.spec import TrainingSpec

log = logging.getLogger(__name__)


def spec_fingerprint(spec: TrainingSpec) -> str:
    """What must match for a checkpoint to belong to this run: settings and data contents."""
    digest = hashlib.sha256()
    settings = {key: value for key, value in asdict(spec).items() if key not in ("output_dir", "training_data", "validation_data")}
    digest.update(repr(sorted(settings.items())).encode())
    for data in (spec.training_data, spec.validation_data):
        if data is not None:
            with open(data, "rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def save_checkpoint(folder: Path, *, fingerprint: str, epoch: int, step: int, adapter_state: dict, optimizer) -> Path:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"epoch-{epoch:04d}.pt"
    staging = path.with_suffix(".tmp")
    torch.save(
        {
            "fingerprint": fingerprint,
            "epoch": epoch,
            "step": step,
            "adapter": adapter_state,
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python_rng": random.getstate(),
        },
        staging,
    )
    os.replace(staging, path)
    return path


def load_latest_checkpoint(folder: Path, fingerprint: str) -> dict | None:
    """The newest checkpoint of this run, with RNG states restored; None when there is none."""
    import torch

    for path in sorted(folder.glob("epoch-*.pt"), reverse=True):
        state = torch.load(path, weights_only=False)
        if state["fingerprint"] != fingerprint:
            log.warning("ignoring %s: it belongs to a run with other settings or data", path)
            continue
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        random.setstate(state["python_rng"])
        return state
    return None
