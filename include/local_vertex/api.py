"""The REST API: the app, its auth, limits and error shape; the routes live in routes/.

Everything is served under both /v1 and /v1beta1 (google-genai's default). Reads run on the
event loop (SQLite in WAL mode never makes a reader wait, and a thread hop costs more than the
read); writes, which may wait for a worker's transaction, and dataset checks run on FastAPI's
thread pool; model calls go to the generation process; nothing here trains. Request bodies are
read by wire.read_request, the one place that turns Google's lenient JSON into canonical form.
"""

from __future__ import annotations

import hmac
import logging

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from include.local_vertex.config import ServiceConfig
from include.local_vertex.errors import ApiError, internal, invalid_argument, too_large, unauthenticated
from include.local_vertex.generation import GenerationService
from include.local_vertex.routes import generation, metrics, models, tuning_jobs
from include.local_vertex.routes.context import Service
from include.local_vertex.scheduler import Scheduler
from include.local_vertex.store import JobStore
from include.local_vertex.wire import json_response

log = logging.getLogger(__name__)
API_VERSIONS = ("v1", "v1beta1")
RESOURCES = (tuning_jobs, generation, metrics, models)


def create_app(config: ServiceConfig, store: JobStore, scheduler: Scheduler,
               generation_service: GenerationService, storage_alive) -> FastAPI:
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

    service = Service(config, store, scheduler, generation_service)
    api = APIRouter(dependencies=[Depends(require_token)])
    for resource in RESOURCES:
        api.include_router(resource.router(service))
    for version in API_VERSIONS:
        app.include_router(api, prefix=f"/{version}")

    @app.get("/openapi.json", dependencies=[Depends(require_token)], include_in_schema=False)
    def openapi():
        """The routes as FastAPI documents them (the API fuzz test reads it); needs the token."""
        return json_response(app.openapi())

    @app.get("/health")
    @app.get("/healthz")
    def health():
        """Liveness for docker-compose and the test fixture; needs no token, tells no secrets."""
        return json_response({"status": "ok", "storage": "ok" if storage_alive() else "down",
                              "jobs": store.state_counts(), "workers": scheduler.workers})

    return app


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
    async def internal_error(request: Request, exc: Exception):
        # The exception's text stays in the service log: it may name paths and internals.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        error = internal()
        return json_response(error.body(), error.http_code)


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
