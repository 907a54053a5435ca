"""models.get: a Model version a succeeded job made (its tunedModel.model: `{id}`, `{id}@N`, `{id}@default`)."""

from __future__ import annotations

from fastapi import APIRouter

from include.local_vertex.model_versions import DEFAULT_ALIAS, base_model_of, find_version, version_of, versions
from include.local_vertex.routes.context import PARENT, Service
from include.local_vertex.wire import json_response


def router(service: Service) -> APIRouter:
    routes = APIRouter()

    @routes.get(PARENT + "/models/{model_id}")
    async def get_model(project: str, location: str, model_id: str):
        job_id, _, version = model_id.partition("@")
        first = service.find_job(project, location, job_id, "models")
        record = find_version(service.store, project, location, job_id, version)
        newest = versions(service.store, project, location, job_id)[-1]
        job = record.resource
        model = {
            "name": f"projects/{project}/locations/{location}/models/{job_id}",
            "displayName": job["tunedModelDisplayName"],
            "versionId": str(version_of(record)),
            "versionAliases": [DEFAULT_ALIAS] if record.id == newest.id else [],
            "createTime": first.resource["endTime"],
            "updateTime": newest.resource["endTime"],
            "versionCreateTime": job["endTime"],
            "versionUpdateTime": job["endTime"],
            "baseModelSource": {"genieSource": {"baseModelUri": base_model_of(job)}},
        }
        if job.get("description"):
            model["description"] = job["description"]
        if job.get("labels"):
            model["labels"] = job["labels"]
        if job.get("encryptionSpec"):
            model["encryptionSpec"] = job["encryptionSpec"]
        return json_response(model)

    return routes
