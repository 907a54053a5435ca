"""The REST API: Vertex AI's tuningJobs, generateContent and TensorBoard time-series reads.

Everything is served under both /v1 and /v1beta1 (google-genai's default). Reads run on the
event loop (SQLite in WAL mode never makes a reader wait, and a thread hop costs more than the
read); writes, which may wait for a worker's transaction, and dataset checks run on FastAPI's
thread pool; generateContent goes to the generation thread; nothing here trains.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import secrets
from pathlib import Path

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from include.local_vertex.base_models import canonical_base_model, local_base_model
from include.local_vertex.config import ServiceConfig
from include.local_vertex.datasets import DatasetUriError, check_dataset_uri
from include.local_vertex.errors import (
    ApiError,
    cancelled_error,
    failed_precondition,
    invalid_argument,
    not_found,
    too_large,
    unauthenticated,
)
from include.local_vertex.filters import compile_filter
from include.local_vertex.generation import GenerationService
from include.local_vertex.job_requests import parse_create_request
from include.local_vertex.scheduler import Scheduler
from include.local_vertex.store import ENDED_STATES, JobRecord, JobStore
from include.local_vertex import tensorboard
from include.local_vertex.timefmt import now_rfc3339

log = logging.getLogger(__name__)
API_VERSIONS = ("v1", "v1beta1")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_JOB_ID = re.compile(r"^[0-9]{1,30}$")
_PARENT = "/projects/{project}/locations/{location}"


def json_response(body: dict, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def create_app(config: ServiceConfig, store: JobStore, scheduler: Scheduler,
               generation: GenerationService, storage_alive) -> FastAPI:
    app = FastAPI(title="Local Vertex AI", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_request_bytes)
    _install_error_handlers(app)

    async def require_token(request: Request) -> None:
        if not config.token:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), config.token.encode()):
            raise unauthenticated("Request is missing a valid bearer token (Authorization: Bearer TOKEN)")

    router = APIRouter(dependencies=[Depends(require_token)])

    def find_job(project: str, location: str, job_id: str, collection: str = "tuningJobs") -> JobRecord:
        """The job with this id under this parent (a job's endpoint and tensorboard share its id)."""
        record = store.get(job_id) if _JOB_ID.match(job_id) else None
        if record is None or (record.project, record.location) != (project, location):
            raise not_found(f"projects/{project}/locations/{location}/{collection}/{job_id} not found")
        return record

    # -- tuningJobs --------------------------------------------------------------------------

    @router.post(_PARENT + "/tuningJobs")
    async def create_tuning_job(project: str, location: str, request: Request):
        job = parse_create_request(await _json_body(request))
        canonical_base_model(job["baseModel"])
        spec = job["supervisedTuningSpec"]
        pins = {}  # what the job will train on, exactly
        for field in ("trainingDatasetUri", "validationDatasetUri"):
            if field in spec:
                try:
                    pins[field] = await run_in_threadpool(check_dataset_uri, spec[field], config,
                                                          field=f"supervisedTuningSpec.{field}")
                except DatasetUriError as exc:
                    raise invalid_argument(str(exc)) from exc
        record = await run_in_threadpool(_insert_job, store, project, location, job, pins)
        scheduler.wake()
        log.info("job %s created: %s on %s", record.id, job["baseModel"], spec["trainingDatasetUri"])
        return json_response(_public(record))

    @router.get(_PARENT + "/tuningJobs")
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
        body: dict = {"tuningJobs": [_public(record) for record in page]}
        if more:
            body["nextPageToken"] = _encode_page_token(page[-1].seq)
        return json_response(body)

    @router.get(_PARENT + "/tuningJobs/{job_id}")
    async def get_tuning_job(project: str, location: str, job_id: str):
        return json_response(_public(find_job(project, location, job_id)))

    @router.post(_PARENT + "/tuningJobs/{job_id}:cancel")
    def cancel_tuning_job(project: str, location: str, job_id: str):
        find_job(project, location, job_id)
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
        if ended_state:
            raise failed_precondition(
                f"TuningJob {job_id} is in state {ended_state[0]} and cannot be cancelled (it has ended)"
            )
        scheduler.wake()
        log.info("job %s: cancel requested, now %s", job_id, record.state if record else "unchanged")
        return json_response({})

    # -- generateContent ---------------------------------------------------------------------

    @router.post(_PARENT + "/endpoints/{endpoint_id}:generateContent")
    async def generate_on_endpoint(project: str, location: str, endpoint_id: str, request: Request):
        body = _content_request(await _json_body(request))
        record = find_job(project, location, endpoint_id, "endpoints")
        adapter_dir = record.internal.get("adapterDir")
        if record.state != "JOB_STATE_SUCCEEDED" or not adapter_dir:
            raise not_found(f"projects/{project}/locations/{location}/endpoints/{endpoint_id} not found "
                            f"(its tuning job is {record.state})")
        base_model = record.internal["resolvedBaseModel"]
        return json_response(await generation.generate(lambda: (base_model, Path(adapter_dir)), body))

    @router.post(_PARENT + "/publishers/google/models/{model}:generateContent")
    async def generate_on_base_model(project: str, location: str, model: str, request: Request):
        body = _content_request(await _json_body(request))
        canonical_base_model(model)
        return json_response(await generation.generate(lambda: (local_base_model(model, config), None), body))

    # -- TensorBoard time series (a job's metrics) -------------------------------------------

    tb = _PARENT + "/tensorboards/{tensorboard_id}"
    run = tb + "/experiments/{experiment_id}/runs/{run_id}"

    def job_of_tensorboard(project, location, tensorboard_id, experiment_id=None, run_id=None) -> JobRecord:
        record = find_job(project, location, tensorboard_id, "tensorboards")
        if experiment_id not in (None, tensorboard_id):
            raise not_found(f"experiment {experiment_id} not found in tensorboard {tensorboard_id}")
        if run_id not in (None, tensorboard.RUN):
            raise not_found(f"run {run_id} not found; this experiment has the run {tensorboard.RUN!r}")
        return record

    @router.get(tb + ":batchRead")
    async def batch_read(project: str, location: str, tensorboard_id: str,
                         time_series: list[str] = Query([], alias="timeSeries")):
        record = job_of_tensorboard(project, location, tensorboard_id)
        if not time_series:
            raise invalid_argument("timeSeries is required: the resource names of the series to read")
        return json_response(tensorboard.batch_read(store, record, time_series))

    @router.get(tb + "/experiments/{experiment_id}")
    async def get_experiment(project: str, location: str, tensorboard_id: str, experiment_id: str):
        record = job_of_tensorboard(project, location, tensorboard_id, experiment_id)
        return json_response(tensorboard.experiment_resource(record))

    @router.get(tb + "/experiments/{experiment_id}/runs")
    async def list_runs(project: str, location: str, tensorboard_id: str, experiment_id: str):
        record = job_of_tensorboard(project, location, tensorboard_id, experiment_id)
        return json_response({"tensorboardRuns": [tensorboard.run_resource(record)]})

    @router.get(run + "/timeSeries")
    async def list_time_series(project: str, location: str, tensorboard_id: str, experiment_id: str, run_id: str):
        record = job_of_tensorboard(project, location, tensorboard_id, experiment_id, run_id)
        return json_response({"tensorboardTimeSeries": tensorboard.series_resources(store, record)})

    @router.get(run + "/timeSeries:batchRead")
    async def batch_read_run(project: str, location: str, tensorboard_id: str, experiment_id: str, run_id: str,
                             time_series: list[str] = Query([], alias="timeSeries")):
        """All of the run's series when none are named (the shortest way to get a job's curves)."""
        record = job_of_tensorboard(project, location, tensorboard_id, experiment_id, run_id)
        return json_response(tensorboard.batch_read(store, record, time_series or list(tensorboard.SERIES_IDS)))

    @router.get(run + "/timeSeries/{series_id}:read")
    async def read_time_series(project: str, location: str, tensorboard_id: str, experiment_id: str,
                               run_id: str, series_id: str):
        record = job_of_tensorboard(project, location, tensorboard_id, experiment_id, run_id)
        return json_response({"timeSeriesData": tensorboard.time_series_data(
            store, record, tensorboard.series_id_of(series_id, record))})

    for version in API_VERSIONS:
        app.include_router(router, prefix=f"/{version}")

    @app.get("/health")
    @app.get("/healthz")
    def health():
        """Liveness for docker-compose and the test fixture; needs no token, tells no secrets."""
        return json_response({"status": "ok", "storage": "ok" if storage_alive() else "down",
                              "jobs": store.state_counts(), "workers": scheduler.workers})

    return app


def _insert_job(store: JobStore, project: str, location: str, job: dict, dataset_pins: dict) -> JobRecord:
    job_id = str(10**17 + secrets.randbelow(9 * 10**17))  # numeric, like Vertex's ids
    now = now_rfc3339()
    name = f"projects/{project}/locations/{location}/tuningJobs/{job_id}"
    # Vertex makes up a display name when none is given.
    job.setdefault("tunedModelDisplayName", f"{canonical_base_model(job['baseModel'])}-tuned-{job_id}")
    resource = {"name": name, **job, "state": "JOB_STATE_QUEUED", "createTime": now, "updateTime": now,
                "experiment": tensorboard.experiment_path(project, location, job_id)}
    return store.insert(job_id, project, location, resource, internal={"datasetPins": dataset_pins})


def _public(record: JobRecord) -> dict:
    resource = dict(record.resource)
    if not resource.get("labels"):
        resource.pop("labels", None)
    return resource


async def _json_body(request: Request):
    raw = await request.body()
    if not raw.strip():
        raise invalid_argument("the request body is empty; a JSON object is expected")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_argument(f"Invalid JSON payload received. {exc}") from None


def _content_request(body) -> dict:
    if not isinstance(body, dict):
        raise invalid_argument("the generateContent body must be a JSON object with `contents`")
    if not body.get("contents"):
        raise invalid_argument("contents is required: a list of {role, parts: [{text}]}")
    return body


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
        if prefix != "before":
            raise ValueError
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid_argument(f"pageToken {token!r} is not a token this service returned") from None


def _install_error_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(ApiError)
    async def api_error(_request, exc: ApiError):
        return json_response(exc.body(), exc.http_code)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(_request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return json_response(invalid_argument(f"invalid request parameters: {problems}").body(), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        status = {404: "NOT_FOUND", 405: "UNIMPLEMENTED"}.get(exc.status_code, "INVALID_ARGUMENT")
        message = (f"{request.method} {request.url.path} is not served by the local Vertex service"
                   if exc.status_code in (404, 405) else str(exc.detail))
        return json_response(ApiError(exc.status_code, status, message).body(), exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(_request, exc: Exception):
        log.exception("unhandled error")
        return json_response(ApiError(500, "INTERNAL", f"internal error: {type(exc).__name__}: {exc}").body(), 500)


class BodySizeLimit:
    """Refuses request bodies over `max_bytes` (by Content-Length, and while streaming)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        error = too_large(f"the request body exceeds the limit of {self.max_bytes} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _send_error(send, error)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise error
            return message

        return await self.app(scope, limited_receive, send)


async def _send_error(send, error: ApiError) -> None:
    body = orjson.dumps(error.body())
    await send({"type": "http.response.start", "status": error.http_code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
