"""Checkpoints: enough state to resume a run exactly where it stopped.

One at the end of every epoch, and one every `checkpoint_interval_s` within an epoch (which
replaces the previous one of that epoch). Each file holds the adapter weights, the optimizer,
the position (epochs done, batches done in the next epoch) and the RNG states; it is written to
a temporary name and renamed, so a crash never leaves a half-written checkpoint behind. Loading
takes tensors and plain containers only (torch.load with weights_only=True): a checkpoint file
cannot run code.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from include.tuning_engine.spec import TrainingSpec

log = logging.getLogger(__name__)
_NAME = re.compile(r"^epoch-(\d{4})(?:-batch-(\d{6}))?\.pt$")
# Settings that do not change what a run computes, so a checkpoint survives a change of them.
_NOT_FINGERPRINTED = ("output_dir", "training_data", "validation_data", "checkpoint_interval_s", "export_epochs")


def spec_fingerprint(spec: TrainingSpec, alive: Callable[[], None] | None = None) -> str:
    """What must match for a checkpoint to belong to this run: settings and data contents."""
    digest = hashlib.sha256()
    settings = {key: value for key, value in asdict(spec).items() if key not in _NOT_FINGERPRINTED}
    digest.update(repr(sorted(settings.items())).encode())
    for data in (spec.training_data, spec.validation_data):
        if data is not None:
            with open(data, "rb") as file:
                for block in iter(lambda: file.read(1 << 24), b""):
                    digest.update(block)
                    if alive is not None:
                        alive()
        digest.update(b"\0")
    return digest.hexdigest()


def checkpoint_name(epochs_done: int, batches_done: int) -> str:
    """epoch-0002.pt after two epochs; epoch-0002-batch-000040.pt 40 batches into the third."""
    return f"epoch-{epochs_done:04d}.pt" if batches_done == 0 else f"epoch-{epochs_done:04d}-batch-{batches_done:06d}.pt"


def _position(path: Path) -> tuple[int, int] | None:
    match = _NAME.match(path.name)
    return (int(match[1]), int(match[2] or 0)) if match else None


def save_checkpoint(folder: Path, *, fingerprint: str, epoch: int, step: int, adapter_state: dict, optimizer,
                    batches_done: int = 0) -> Path:
    """Saves the run after `epoch` whole epochs and `batches_done` batches of the next one, and
    drops the within-epoch checkpoints this one supersedes."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / checkpoint_name(epoch, batches_done)
    staging = path.with_suffix(".tmp")
    python_state = random.getstate()
    torch.save(
        {
            "fingerprint": fingerprint,
            "epoch": epoch,
            "batches_done": batches_done,
            "step": step,
            "adapter": adapter_state,
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            # (version, tuple of ints, gauss); as lists, which weights_only loading accepts
            "python_rng": [python_state[0], list(python_state[1]), python_state[2]],
        },
        staging,
    )
    os.replace(staging, path)
    for older in folder.glob("epoch-*-batch-*.pt"):
        position = _position(older)
        if older != path and position is not None and position < (epoch, batches_done):
            older.unlink(missing_ok=True)
    return path


def load_latest_checkpoint(folder: Path, fingerprint: str) -> dict | None:
    """The newest checkpoint of this run, with RNG states restored; None when there is none."""
    import torch

    found = [(position, path) for path in folder.glob("epoch-*.pt") if (position := _position(path))]
    for _, path in sorted(found, reverse=True):
        state = torch.load(path, weights_only=True)
        if state["fingerprint"] != fingerprint:
            log.warning("ignoring %s: it belongs to a run with other settings or data", path)
            continue
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        version, internal, gauss = state["python_rng"]
        random.setstate((version, tuple(internal), gauss))
        state.setdefault("batches_done", 0)
        return state
    return None
