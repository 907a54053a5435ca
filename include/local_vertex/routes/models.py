"""models.get: the Model a succeeded job made (its tunedModel.model, `{id}` or `{id}@1`)."""

from __future__ import annotations

from fastapi import APIRouter

from include.local_vertex.errors import not_found
from include.local_vertex.routes.context import PARENT, Service
from include.local_vertex.wire import json_response

VERSION = "1"  # each job makes one model with one version


def router(service: Service) -> APIRouter:
    routes = APIRouter()

    @routes.get(PARENT + "/models/{model_id}")
    async def get_model(project: str, location: str, model_id: str):
        job_id, _, version = model_id.partition("@")
        record = service.find_job(project, location, job_id, "models")
        name = f"projects/{project}/locations/{location}/models/{job_id}"
        if record.state != "JOB_STATE_SUCCEEDED" or version not in ("", VERSION):
            raise not_found(f"{name}@{version or VERSION} not found"
                            + (f" (its tuning job is {record.state})" if not version else ""))
        job = record.resource
        model = {
            "name": name,
            "displayName": job["tunedModelDisplayName"],
            "versionId": VERSION,
            "versionAliases": ["default"],
            "createTime": job["endTime"],
            "updateTime": job["endTime"],
            "versionCreateTime": job["endTime"],
            "versionUpdateTime": job["endTime"],
            "baseModelSource": {"genieSource": {"baseModelUri": job["baseModel"]}},
        }
        if job.get("description"):
            model["description"] = job["description"]
        if job.get("labels"):
            model["labels"] = job["labels"]
        if job.get("encryptionSpec"):
            model["encryptionSpec"] = job["encryptionSpec"]
        return json_response(model)

    return routes
