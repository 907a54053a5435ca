"""models.get and models.patch: a Model version a succeeded job made (its tunedModel.model: `{id}`,
`{id}@N`, `{id}@default`).

PATCH changes what the service lets a client change here, the model's `defaultCheckpointId` (the
checkpoint its main endpoint serves). `updateMask` names the fields to change; without one, the
fields present in the body are the mask (AIP-134), which is what google-genai's models.update sends.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from include.local_vertex.checkpoints import checkpoints, default_checkpoint_id, set_default_checkpoint
from include.local_vertex.errors import invalid_argument
from include.local_vertex.model_versions import (
    DEFAULT_ALIAS,
    base_model_of,
    find_version,
    model_id_of,
    version_of,
    versions,
)
from include.local_vertex.routes.context import PARENT, Service
from include.local_vertex.store import JobRecord, JobStore
from include.local_vertex.timefmt import now_rfc3339
from include.local_vertex.wire import json_response, read_request, request_body

UPDATABLE = {"defaultCheckpointId"}


def model_resource(store: JobStore, record: JobRecord) -> dict:
    """The Model version a succeeded job made: the one place its representation is built."""
    job = record.resource
    model_id = model_id_of(record)
    made = versions(store, record.project, record.location, model_id)
    first, newest = made[0], made[-1]
    version_updated = record.internal.get("modelUpdateTime", job["endTime"])
    model = {
        "name": f"projects/{record.project}/locations/{record.location}/models/{model_id}",
        "displayName": job["tunedModelDisplayName"],
        "versionId": str(version_of(record)),
        "versionAliases": [DEFAULT_ALIAS] if record.id == newest.id else [],
        "createTime": first.resource["endTime"],
        "updateTime": max(newest.resource["endTime"], version_updated),
        "versionCreateTime": job["endTime"],
        "versionUpdateTime": version_updated,
        "baseModelSource": {"genieSource": {"baseModelUri": base_model_of(job)}},
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
        service.find_job(project, location, job_id, "models")  # 404 for an id no job has
        return find_version(service.store, project, location, job_id, version)

    @routes.get(PARENT + "/models/{model_id}")
    async def get_model(project: str, location: str, model_id: str):
        return json_response(model_resource(service.store, find_model(project, location, model_id)))

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
        return json_response(model_resource(service.store, updated))

    return routes
