"""A tuned model's checkpoints, as Vertex keeps them: which epochs, their ids and endpoints, the default.

Vertex's rule: unless `supervisedTuningSpec.exportLastCheckpointOnly`, a job keeps one checkpoint
per epoch below 10 epochs, and about 10 evenly spaced ones (the last included) from 10 epochs up.
Each is listed in `tunedModel.checkpoints[] {checkpointId, epoch, step, endpoint}` as soon as it
exists and is served on an endpoint of its own; the model's main endpoint serves the default
checkpoint, the last one until the model's `defaultCheckpointId` is changed.

Locally a checkpoint is the LoRA adapter saved after its epoch (megabytes, not a model copy):
checkpoint ids count from "1" in training order, and checkpoint N of job J is served on endpoint
J followed by N in three digits (job ids are 18 digits, so the two kinds of id never meet).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable

from include.local_vertex.errors import invalid_argument
from include.local_vertex.store import JobRecord

MANY_EPOCHS = 10  # from here on, about this many checkpoints instead of one per epoch
_CHECKPOINT_DIGITS = 3
_CHECKPOINT_ENDPOINT = re.compile(r"^([0-9]+)([0-9]{%d})$" % _CHECKPOINT_DIGITS)


def checkpoint_epochs(epoch_count: int, last_only: bool = False) -> tuple[int, ...]:
    """The epochs after which a job of `epoch_count` epochs keeps a checkpoint."""
    if last_only or epoch_count < 1:
        return (max(epoch_count, 1),)
    if epoch_count < MANY_EPOCHS:
        return tuple(range(1, epoch_count + 1))
    return tuple(sorted({math.ceil(epoch_count * k / MANY_EPOCHS) for k in range(1, MANY_EPOCHS + 1)}))


def checkpoint_endpoint_id(job_id: str, checkpoint_id: str) -> str:
    return f"{job_id}{int(checkpoint_id):0{_CHECKPOINT_DIGITS}d}"


def split_endpoint_id(endpoint_id: str, is_job: Callable[[str], bool]) -> tuple[str, str | None]:
    """(job id, checkpoint id or None for the main endpoint) of an endpoint id."""
    if is_job(endpoint_id):
        return endpoint_id, None
    match = _CHECKPOINT_ENDPOINT.match(endpoint_id)
    if match and int(match[2]) > 0:
        return match[1], str(int(match[2]))
    return endpoint_id, None


def checkpoints(record: JobRecord) -> list[dict]:
    """The job's checkpoints as its resource lists them (tunedModel.checkpoints)."""
    return record.resource.get("tunedModel", {}).get("checkpoints", [])


def add_checkpoint(record: JobRecord, epoch: int, step: int, adapter_dir: Path) -> None:
    """Lists a new checkpoint on the job (once per epoch: a resumed run may save one again)."""
    listed = checkpoints(record)
    adapters = record.internal.setdefault("checkpointAdapters", {})
    existing = next((c for c in listed if int(c["epoch"]) == epoch), None)
    if existing is not None:
        adapters[existing["checkpointId"]] = str(adapter_dir)
        return
    checkpoint_id = str(len(listed) + 1)
    prefix = f"projects/{record.project}/locations/{record.location}"
    listed.append({"checkpointId": checkpoint_id, "epoch": str(epoch), "step": str(step),
                   "endpoint": f"{prefix}/endpoints/{checkpoint_endpoint_id(record.id, checkpoint_id)}"})
    record.resource.setdefault("tunedModel", {})["checkpoints"] = listed
    adapters[checkpoint_id] = str(adapter_dir)


def default_checkpoint_id(record: JobRecord) -> str | None:
    """The checkpoint the main endpoint serves: the one chosen, else the last."""
    listed = checkpoints(record)
    return record.internal.get("defaultCheckpointId") or (listed[-1]["checkpointId"] if listed else None)


def set_default_checkpoint(record: JobRecord, checkpoint_id: str) -> None:
    valid = [c["checkpointId"] for c in checkpoints(record)]
    if checkpoint_id not in valid:
        raise invalid_argument(f"defaultCheckpointId {checkpoint_id!r} is not a checkpoint of this model; "
                               f"its checkpoints are {', '.join(valid) or 'none'}")
    record.internal["defaultCheckpointId"] = checkpoint_id


def adapter_dir(record: JobRecord, checkpoint_id: str | None) -> Path | None:
    """The adapter a checkpoint (None: the default one) is served with; None when it has none."""
    checkpoint_id = checkpoint_id or default_checkpoint_id(record)
    folder = record.internal.get("checkpointAdapters", {}).get(checkpoint_id) if checkpoint_id else None
    folder = folder or (record.internal.get("adapterDir") if checkpoint_id is None else None)
    return Path(folder) if folder else None
