"""models.get and models.patch: the Model a succeeded job made (its tunedModel.model, `{id}` or `{id}@1`).

PATCH changes what the service lets a client change here, the model's `defaultCheckpointId` (the
checkpoint its main endpoint serves). `updateMask` names the fields to change; without one, the
fields present in the body are the mask (AIP-134), which is what google-genai's models.update sends.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from include.local_vertex.checkpoints import checkpoints, default_checkpoint_id, set_default_checkpoint
from include.local_vertex.errors import invalid_argument, not_found
from include.local_vertex.routes.context import PARENT, Service
from include.local_vertex.store import JobRecord
from include.local_vertex.timefmt import now_rfc3339
from include.local_vertex.wire import json_response, read_request, request_body

VERSION = "1"  # each job makes one model with one version
UPDATABLE = {"defaultCheckpointId"}


def model_resource(record: JobRecord) -> dict:
    """The Model (one version) a succeeded job made: the one place its representation is built."""
    job = record.resource
    model = {
        "name": f"projects/{record.project}/locations/{record.location}/models/{record.id}",
        "displayName": job["tunedModelDisplayName"],
        "versionId": VERSION,
        "versionAliases": ["default"],
        "createTime": job["endTime"],
        "updateTime": record.internal.get("modelUpdateTime", job["endTime"]),
        "versionCreateTime": job["endTime"],
        "versionUpdateTime": record.internal.get("modelUpdateTime", job["endTime"]),
        "baseModelSource": {"genieSource": {"baseModelUri": job["baseModel"]}},
    }
    for field in ("description", "labels", "encryptionSpec"):
        if job.get(field):
            model[field] = job[field]
    listed = checkpoints(record)
    if listed:
        model["checkpoints"] = [{key: c[key] for key in ("checkpointId", "epoch", "step")} for c in listed]
        model["defaultCheckpointId"] = default_checkpoint_id(record)
    return model


def router(service: Service) -> APIRouter:
    routes = APIRouter()

    def find_model(project: str, location: str, model_id: str) -> JobRecord:
        job_id, _, version = model_id.partition("@")
        record = service.find_job(project, location, job_id, "models")
        if record.state != "JOB_STATE_SUCCEEDED" or version not in ("", VERSION):
            name = f"projects/{project}/locations/{location}/models/{job_id}"
            raise not_found(f"{name}@{version or VERSION} not found"
                            + (f" (its tuning job is {record.state})" if not version else ""))
        return record

    @routes.get(PARENT + "/models/{model_id}")
    async def get_model(project: str, location: str, model_id: str):
        return json_response(model_resource(find_model(project, location, model_id)))

    @routes.patch(PARENT + "/models/{model_id}", openapi_extra=request_body("Model"))
    async def update_model(project: str, location: str, model_id: str, request: Request,
                           update_mask: str | None = Query(None, alias="updateMask")):
        body = await read_request(request, "Model")
        record = find_model(project, location, model_id)
        mask = [path.strip() for path in update_mask.split(",") if path.strip()] if update_mask else list(body)
        if not mask:
            raise invalid_argument("updateMask is empty and the body sets no field: nothing to update")
        refused = [path for path in mask if path not in UPDATABLE]
        if refused:
            raise invalid_argument(f"updateMask paths {', '.join(refused)} cannot be updated by the local service "
                                   f"(it updates {', '.join(sorted(UPDATABLE))})")
        checkpoint_id = body.get("defaultCheckpointId")
        if not isinstance(checkpoint_id, str) or not checkpoint_id:
            raise invalid_argument("defaultCheckpointId must be a checkpoint id (a string) when the mask names it")

        def change(job: JobRecord):
            set_default_checkpoint(job, checkpoint_id)
            job.internal["modelUpdateTime"] = now_rfc3339()

        updated = await run_in_threadpool(service.store.update, record.id, change)
        return json_response(model_resource(updated))

    return routes
