"""
The console's pages and JSON API, mounted by Airflow's API server under ``URL_PREFIX``.

Security: every API route needs the Airflow user's token, read the way Airflow's own API reads
it (the UI's ``_token`` cookie, or ``Authorization: Bearer``), and answers 401 without one.
Actions (cancel, try the model) are POSTs that also need the ``X-Requested-By`` header: a form
or link on another site cannot send it, and a script there cannot add it without a CORS
preflight that this app does not grant.

Isolation: the hook is blocking; its calls run on this app's own small thread pool with short
time-outs, so a slow or dead backend ties up at most those threads, never the pool that the
rest of Airflow's API server runs on.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from gemini_tuning.console import URL_PREFIX, backend
from gemini_tuning.jobs import job_state

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
CSRF_HEADER = "X-Requested-By"
TUNING_DAG_ID = "gemini_supervised_tuning"
BACKEND_THREADS = 8
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


async def require_user(request: Request) -> Any:
    """The logged-in Airflow user, as Airflow's own API authenticates one; 401 for anything else."""
    from fastapi.security import HTTPBearer

    from airflow.api_fastapi.core_api.security import get_user

    credentials = await HTTPBearer(auto_error=False)(request)
    try:
        return await get_user(request, _oauth_token=None, bearer_credentials=credentials)
    except HTTPException as error:
        raise HTTPException(401, f"Log in to Airflow first ({error.detail})",
                            headers={"WWW-Authenticate": "Bearer"}) from None


async def require_action_header(request: Request) -> None:
    if not request.headers.get(CSRF_HEADER):
        raise HTTPException(403, f"actions need the {CSRF_HEADER} header (sent by the console's own page)")


def _job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise backend.BadRequest(f"{job_id!r} is not a tuning job id")
    return job_id


def error_body(error: BaseException) -> tuple[int, str]:
    """The status and message a page shows for a failed backend call: what failed, in words."""
    import httpx
    from google.genai.errors import APIError

    from airflow.exceptions import AirflowNotFoundException

    if isinstance(error, backend.BadRequest):
        return 400, str(error)
    if isinstance(error, APIError):
        status = error.code if 400 <= error.code < 500 else 502
        return status, f"The tuning backend answered {error.code} {error.status or ''}: {error.message}".strip()
    if isinstance(error, httpx.HTTPStatusError):
        return 502, f"The tuning backend answered {error.response.status_code} for {error.request.url.path}"
    if isinstance(error, (httpx.TransportError, ConnectionError, TimeoutError)):
        return 503, f"The tuning backend is not reachable: {error or type(error).__name__}"
    if isinstance(error, AirflowNotFoundException):
        return 503, f"The Airflow connection {backend.DEFAULT_CONN_ID} is not set up: {error}"
    log.exception("console: unexpected error from the tuning backend")
    return 500, f"{type(error).__name__}: {error}"


def create_app() -> FastAPI:
    app = FastAPI(title="Gemini tuning console", docs_url=None, redoc_url=None, openapi_url=None)
    limiter = anyio.CapacityLimiter(BACKEND_THREADS)

    async def call(function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` on the console's threads; a failure becomes the HTTP error that describes it."""
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=limiter)
        except HTTPException:
            raise
        except Exception as error:
            raise HTTPException(*error_body(error)) from None

    @app.exception_handler(backend.BadRequest)
    async def bad_request(request: Request, error: backend.BadRequest) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": error.detail}, status_code=error.status_code, headers=error.headers)

    # -- pages: one HTML shell, routed in the browser by its path ------------------------------

    page = (STATIC / "index.html").read_text()

    @app.get("/", response_class=HTMLResponse)
    @app.get("/jobs/{job_id}", response_class=HTMLResponse)
    async def shell(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/") or URL_PREFIX
        return HTMLResponse(page.replace("{{ROOT}}", root), headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # -- API -----------------------------------------------------------------------------------

    api = [Depends(require_user)]
    actions = [Depends(require_user), Depends(require_action_header)]

    @app.get("/api/config", dependencies=api)
    async def config(request: Request) -> dict[str, Any]:
        root = request.scope.get("root_path", "").rstrip("/")
        airflow_root = root[: -len(URL_PREFIX)] if root.endswith(URL_PREFIX) else ""
        return {
            "states": backend.STATES,
            "trySettings": backend.TRY_SETTINGS,
            "airflowRoot": airflow_root,
            "tuningDagId": TUNING_DAG_ID,
        }

    @app.get("/api/jobs", dependencies=api)
    async def jobs(
        state: str | None = None,
        label: str | None = None,
        q: str | None = None,
        page: str | None = None,
        page_size: int = Query(20, ge=1, le=100),
    ) -> dict[str, Any]:
        return await call(lambda: backend.jobs_page(
            backend.hook(), state=state or None, label=label or None, search=q, page_size=page_size, cursor=page))

    @app.get("/api/jobs/{job_id}", dependencies=api)
    async def job(job_id: str) -> dict[str, Any]:
        return await call(lambda: backend.job_detail(backend.hook(), _job_id(job_id)))

    @app.get("/api/jobs/{job_id}/metrics", dependencies=api)
    async def metrics(job_id: str) -> dict[str, Any]:
        return await call(lambda: backend.metric_series(backend.hook(), _job_id(job_id)))

    @app.post("/api/jobs/{job_id}/cancel", dependencies=actions)
    async def cancel(job_id: str) -> dict[str, Any]:
        return await call(lambda: backend.cancel(backend.hook(), _job_id(job_id)))

    @app.post("/api/jobs/{job_id}/try", dependencies=actions)
    async def try_model(job_id: str, request: Request) -> StreamingResponse:
        """One model's answer (``target`` tuned or base) as newline-delimited JSON events."""
        try:
            body = await request.json()
        except ValueError:
            raise backend.BadRequest("the body must be JSON") from None
        if not isinstance(body, dict) or body.get("target") not in ("tuned", "base"):
            raise backend.BadRequest('the body must be a JSON object with "target": "tuned" or "base"')
        job = await call(lambda: backend.hook().get_tuning_job(_job_id(job_id)))
        if body["target"] == "base":
            model = job.base_model
        elif job.tuned_model and job.tuned_model.endpoint:
            model = job.tuned_model.endpoint
        else:
            raise backend.BadRequest(f"job {job_id} has no tuned model yet (it is {job_state(job)})")
        events = backend.answer_events(
            backend.hook(for_reads=False),
            model=model,
            prompt=str(body.get("prompt") or ""),
            system_instruction=str(body.get("systemInstruction") or "") or None,
            settings=body.get("settings") or {},
        )

        async def lines() -> AsyncIterator[bytes]:
            done = object()
            while True:
                try:
                    event = await call(next, events, done)
                except HTTPException as error:  # shown in the page, after any text so far
                    event = {"error": error.detail}
                if event is done:
                    return
                yield json.dumps({"model": model, **event}).encode() + b"\n"
                if "error" in event:
                    return

        return StreamingResponse(lines(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"})

    return app
