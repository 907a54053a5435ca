"""tuningJobs: create, list (AIP-160 filter, pages), get, cancel."""

from __future__ import annotations

import base64
import binascii
import logging
import secrets

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from include.local_vertex import tensorboard
from include.local_vertex.base_models import canonical_base_model
from include.local_vertex.datasets import DatasetUriError, check_dataset_uri
from include.local_vertex.errors import cancelled_error, failed_precondition, invalid_argument
from include.local_vertex.filters import compile_filter
from include.local_vertex.job_requests import parse_create_request
from include.local_vertex.model_versions import base_model_of, continue_from
from include.local_vertex.routes.context import PARENT, Service
from include.local_vertex.store import ENDED_STATES, JobRecord, JobStore
from include.local_vertex.timefmt import now_rfc3339
from include.local_vertex.wire import json_response, read_request, request_body

log = logging.getLogger(__name__)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def router(service: Service) -> APIRouter:
    routes = APIRouter()
    store = service.store

    @routes.post(PARENT + "/tuningJobs", openapi_extra=request_body("TuningJob"))
    async def create_tuning_job(project: str, location: str, request: Request):
        job = parse_create_request(await read_request(request, "TuningJob"), location)
        internal = continue_from(store, project, location, job) if "preTunedModel" in job else {}
        spec = job["supervisedTuningSpec"]
        pins = {}  # what the job will train on, exactly
        for field in ("trainingDatasetUri", "validationDatasetUri"):
            if field in spec:
                try:
                    pins[field] = await run_in_threadpool(check_dataset_uri, spec[field], service.config,
                                                          field=f"supervisedTuningSpec.{field}")
                except DatasetUriError as exc:
                    raise invalid_argument(str(exc)) from exc
        record = await run_in_threadpool(_insert_job, store, project, location, job, {**internal, "datasetPins": pins})
        service.scheduler.wake()
        log.info("job %s created: %s on %s", record.id, job.get("preTunedModel", {}).get("tunedModelName")
                 or job["baseModel"], spec["trainingDatasetUri"])
        return json_response(public(record))

    @routes.get(PARENT + "/tuningJobs")
    async def list_tuning_jobs(project: str, location: str,
                               page_size: int | None = Query(None, alias="pageSize"),
                               page_token: str | None = Query(None, alias="pageToken"),
                               filter: str | None = Query(None)):
        size = _page_size(page_size)
        matches = compile_filter(filter)
        page: list[JobRecord] = []
        more = False
        for record in store.newest_first(project, location, before_seq=_decode_page_token(page_token)):
            if matches(record.resource):
                if len(page) == size:
                    more = True
                    break
                page.append(record)
        body: dict = {"tuningJobs": [public(record) for record in page]}
        if more:
            body["nextPageToken"] = _encode_page_token(page[-1].seq)
        return json_response(body)

    @routes.get(PARENT + "/tuningJobs/{job_id}")
    async def get_tuning_job(project: str, location: str, job_id: str):
        return json_response(public(service.find_job(project, location, job_id)))

    @routes.post(PARENT + "/tuningJobs/{job_id}:cancel", openapi_extra=request_body("CancelTuningJobRequest", required=False))
    async def cancel_tuning_job(project: str, location: str, job_id: str, request: Request):
        await read_request(request, "CancelTuningJobRequest", allow_empty=True)
        service.find_job(project, location, job_id)
        record, ended_state = await run_in_threadpool(_cancel, store, job_id)
        if ended_state:
            raise failed_precondition(
                f"TuningJob {job_id} is in state {ended_state} and cannot be cancelled (it has ended)"
            )
        service.scheduler.wake()
        log.info("job %s: cancel requested, now %s", job_id, record.state if record else "unchanged")
        return json_response({})

    return routes


def public(record: JobRecord) -> dict:
    """The TuningJob as clients see it."""
    resource = dict(record.resource)
    if not resource.get("labels"):
        resource.pop("labels", None)
    return resource


def _insert_job(store: JobStore, project: str, location: str, job: dict, internal: dict) -> JobRecord:
    job_id = str(10**17 + secrets.randbelow(9 * 10**17))  # numeric, like Vertex's ids
    now = now_rfc3339()
    name = f"projects/{project}/locations/{location}/tuningJobs/{job_id}"
    # Vertex makes up a display name when none is given.
    job.setdefault("tunedModelDisplayName", f"{canonical_base_model(base_model_of(job))}-tuned-{job_id}")
    resource = {"name": name, **job, "state": "JOB_STATE_QUEUED", "createTime": now, "updateTime": now,
                "experiment": tensorboard.experiment_path(project, location, job_id)}
    return store.insert(job_id, project, location, resource, internal=internal)


def _cancel(store: JobStore, job_id: str) -> tuple[JobRecord | None, str | None]:
    """Queued: cancelled at once; running: CANCELLING (the scheduler stops its worker)."""
    ended_state: list[str] = []

    def cancel(record: JobRecord):
        if record.state in ENDED_STATES:
            ended_state.append(record.state)
            return False
        if record.state == "JOB_STATE_QUEUED":
            record.set_state("JOB_STATE_CANCELLED", error=cancelled_error())
        elif record.state != "JOB_STATE_CANCELLING":
            record.set_state("JOB_STATE_CANCELLING")

    record = store.update(job_id, cancel)
    return record, (ended_state[0] if ended_state else None)


def _page_size(page_size: int | None) -> int:
    if page_size is None or page_size == 0:
        return DEFAULT_PAGE_SIZE
    if page_size < 0:
        raise invalid_argument(f"pageSize must not be negative, got {page_size}")
    return min(page_size, MAX_PAGE_SIZE)


def _encode_page_token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"before:{seq}".encode()).decode().rstrip("=")


def _decode_page_token(token: str | None) -> int | None:
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, seq = text.partition(":")
        if prefix != "before" or not 0 < int(seq) < 2**63:  # a row id SQLite can compare
            raise ValueError
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid_argument(f"pageToken {token!r} is not a token this service returned") from None
