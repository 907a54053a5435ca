"""Versions of a tuned model: continuous tuning makes the next version of the model it continues.

A job started from a base model makes version 1 of a new model whose id is the job's id. A job
started from a `preTunedModel` records the model's id in its internal fields and, when it
succeeds, becomes that model's next version. Each version keeps its own endpoint (its job's id).
"""

from __future__ import annotations

from include.local_vertex.checkpoints import adapter_dir, checkpoints
from include.local_vertex.errors import invalid_argument, not_found
from include.local_vertex.job_requests import tuned_model_name_parts
from include.local_vertex.store import JobRecord, JobStore

DEFAULT_ALIAS = "default"  # the newest version


def model_id_of(record: JobRecord) -> str:
    return record.internal.get("modelId", record.id)


def version_of(record: JobRecord) -> int:
    return int(record.internal.get("modelVersion", 1))


def versions(store: JobStore, project: str, location: str, model_id: str) -> list[JobRecord]:
    """The model's versions made so far (succeeded jobs), oldest first."""
    made = [record for record in store.newest_first(project, location)
            if record.state == "JOB_STATE_SUCCEEDED" and model_id_of(record) == model_id]
    return sorted(made, key=version_of)


def next_version(store: JobStore, project: str, location: str, model_id: str) -> int:
    made = versions(store, project, location, model_id)
    return version_of(made[-1]) + 1 if made else 1


def find_version(store: JobStore, project: str, location: str, model_id: str, version: str | None) -> JobRecord:
    """The job that made ``models/ID@version`` (None or "default": the newest); 404 otherwise."""
    name = f"projects/{project}/locations/{location}/models/{model_id}"
    made = versions(store, project, location, model_id)
    if not made:
        raise not_found(f"{name} not found (no succeeded tuning job made it)")
    if version in (None, "", DEFAULT_ALIAS):
        return made[-1]
    for record in made:
        if str(version_of(record)) == version:
            return record
    raise not_found(f"{name}@{version} not found: the model has versions {[version_of(r) for r in made]}")


def base_model_of(job: dict) -> str:
    """The Gemini base model at the root of a TuningJob's model, continued or not."""
    return job.get("baseModel") or job["preTunedModel"]["baseModel"]


def continue_from(store: JobStore, project: str, location: str, job: dict) -> dict:
    """
    Resolve a create request's ``preTunedModel`` in place (filling ``baseModel``, the adapter
    size and the display name from the model continued); returns the job's internal fields.
    """
    pre_tuned = job["preTunedModel"]
    name_project, name_location, model_id, version = tuned_model_name_parts(pre_tuned["tunedModelName"])
    if (name_project, name_location) != (project, location):
        raise invalid_argument(f"preTunedModel.tunedModelName {pre_tuned['tunedModelName']!r} is not under "
                               f"projects/{project}/locations/{location}")
    source = find_version(store, project, location, model_id, version)
    checkpoint_id = pre_tuned.get("checkpointId")
    if checkpoint_id is not None:
        kept = [c["checkpointId"] for c in checkpoints(source)]
        if checkpoint_id not in kept:
            raise not_found(f"{pre_tuned['tunedModelName']} has no checkpoint {checkpoint_id!r}"
                            f" (it keeps {', '.join(kept) or 'only its final adapter'})")
    # Without a checkpoint id, what the model serves: its default checkpoint.
    source_adapter = adapter_dir(source, checkpoint_id)
    pre_tuned["baseModel"] = base_model_of(source.resource)
    hyper = job["supervisedTuningSpec"]["hyperParameters"]
    size = source.resource["supervisedTuningSpec"]["hyperParameters"]["adapterSize"]
    if hyper.setdefault("adapterSize", size) != size:
        raise invalid_argument(f"supervisedTuningSpec.hyperParameters.adapterSize must be {size}, the adapter size of "
                               f"{pre_tuned['tunedModelName']} (a continued model keeps its adapter), "
                               f"got {hyper['adapterSize']}")
    job.setdefault("tunedModelDisplayName", source.resource["tunedModelDisplayName"])
    return {"modelId": model_id_of(source), "sourceJob": source.id, "sourceAdapterDir": str(source_adapter)}
