"""
What the console asks of the tuning backend, through the project's hook and connection.

Each function is blocking (the hook is); the API runs them on its own small thread pool. The
results are plain JSON-ready dicts in Vertex's camelCase, with a few fields the pages need added
under ``console``.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gemini_tuning.jobs import DEFAULT_CONN_ID, ENDED, TUNING_METRICS, job_state, job_to_dict

if TYPE_CHECKING:
    from google.genai.types import TuningJob

    from gemini_tuning.hooks.tuning import GenAITuningHook

# A page of the console that a person can hold a tool to: list, get and cancel must answer in
# this time or show an error, whatever the connection's time-out for training calls says.
READ_TIMEOUT_SECONDS = 30.0
# Display-name search is done here (Vertex's list filter has no substring match): the backend is
# read in pages of this size, and one request reads at most this many pages before it answers.
SEARCH_PAGE_SIZE = 100
SEARCH_MAX_PAGES = 10

_LABEL = re.compile(r"^([a-z][a-z0-9_-]{0,62})(?:=([a-z0-9_-]{0,63}))?$")
STATES = (
    "JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED", "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
)


class BadRequest(ValueError):
    """A console request that names something wrongly; the message says what."""


def hook(*, for_reads: bool = True) -> GenAITuningHook:
    from gemini_tuning.hooks.tuning import GenAITuningHook

    tuning_hook = GenAITuningHook(gcp_conn_id=DEFAULT_CONN_ID)
    if for_reads:
        tuning_hook.request_timeout_seconds = min(tuning_hook.request_timeout_seconds, READ_TIMEOUT_SECONDS)
    return tuning_hook


# -- the jobs list -----------------------------------------------------------------------------


def list_filter(state: str | None, label: str | None) -> str | None:
    """The AIP-160 list filter for the page's state and ``key`` / ``key=value`` label choices."""
    terms = []
    if state:
        if state not in STATES:
            raise BadRequest(f"state must be one of {', '.join(STATES)}, got {state!r}")
        terms.append(f'state="{state}"')
    if label:
        match = _LABEL.match(label.strip())
        if not match:
            raise BadRequest(
                f"label must be key or key=value with lowercase letters, digits, _ and - (as Vertex labels), "
                f"got {label!r}"
            )
        key, value = match.groups()
        terms.append(f"labels.{key}:*" if value is None else f'labels.{key}="{value}"')
    return " AND ".join(terms) or None


def _encode_cursor(token: str | None, skip: int) -> str | None:
    if token is None and skip == 0:
        return None
    return base64.urlsafe_b64encode(json.dumps([token, skip]).encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[str | None, int]:
    if not cursor:
        return None, 0
    try:
        token, skip = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return token, int(skip)
    except (ValueError, TypeError):
        raise BadRequest(f"page is not a page token of this console: {cursor!r}") from None


def jobs_page(
    tuning_hook: GenAITuningHook,
    *,
    state: str | None = None,
    label: str | None = None,
    search: str | None = None,
    page_size: int = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    """
    One page of jobs, in the backend's order (newest first), and the cursor of the next page.

    Without a search the backend's own paging is used as is. With one, backend pages are read
    and filtered here; the cursor remembers the backend page and how many of its matches were
    already shown, so no job is skipped or shown twice.
    """
    filter_text = list_filter(state, label)
    needle = (search or "").strip().lower()
    token, skip = _decode_cursor(cursor)
    found: list[TuningJob] = []
    for _ in range(SEARCH_MAX_PAGES if needle else 1):
        jobs, next_token = tuning_hook.list_tuning_jobs_page(
            filter=filter_text, page_size=SEARCH_PAGE_SIZE if needle else page_size, page_token=token
        )
        matching = [job for job in jobs if needle in (job.tuned_model_display_name or "").lower()]
        wanted = page_size - len(found)
        if len(matching) - skip > wanted:
            found += matching[skip : skip + wanted]
            return {"jobs": [job_row(job) for job in found], "next": _encode_cursor(token, skip + wanted)}
        found += matching[skip:]
        token, skip = next_token, 0
        if token is None or len(found) == page_size:
            break
    return {"jobs": [job_row(job) for job in found], "next": _encode_cursor(token, 0)}


def _duration_seconds(job: dict[str, Any]) -> float | None:
    from datetime import datetime, timezone

    def moment(field: str) -> datetime | None:
        text = job.get(field)
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None

    start = moment("startTime") or moment("createTime")
    if start is None:
        return None
    end = moment("endTime") or (None if job_state(job) in ENDED else datetime.now(timezone.utc))
    return (end - start).total_seconds() if end else None


def job_row(job: TuningJob) -> dict[str, Any]:
    """The list's columns of one job."""
    resource = job_to_dict(job)
    hyper = resource.get("supervisedTuningSpec", {}).get("hyperParameters", {})
    return {
        "name": resource["name"],
        "id": resource["name"].rsplit("/", 1)[-1],
        "displayName": resource.get("tunedModelDisplayName"),
        "baseModel": resource.get("baseModel"),
        "state": job_state(job),
        "createTime": resource.get("createTime"),
        "durationSeconds": _duration_seconds(resource),
        "epochCount": hyper.get("epochCount"),
        "adapterSize": hyper.get("adapterSize"),
        "dagRun": dag_run_of(resource.get("labels") or {}),
    }


# -- the Airflow run behind a job --------------------------------------------------------------

_runs_by_hash: dict[str, tuple[str, str] | None] = {}


def dag_run_of(labels: dict[str, str]) -> dict[str, str] | None:
    """
    The DAG run that created a job, from its ``airflow_dag_id`` and ``airflow_run_hash`` labels.

    The labels carry a hash of the run id (label values are short and restricted), so the runs of
    that DAG are hashed the same way and matched. Answers are kept, misses too: a job is created
    by a run that already exists, and run ids never change.
    """
    dag_label, run_hash = labels.get("airflow_dag_id"), labels.get("airflow_run_hash")
    if not (dag_label and run_hash):
        return None
    if run_hash not in _runs_by_hash:
        from sqlalchemy import select

        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from gemini_tuning.jobs import label_value
        from gemini_tuning.operators.tuning_job import dag_run_labels

        with create_session() as session:
            dag_ids = [d for d in session.scalars(select(DagRun.dag_id).distinct()) if label_value(d) == dag_label]
            for dag_id, run_id in session.execute(select(DagRun.dag_id, DagRun.run_id).where(DagRun.dag_id.in_(dag_ids))):
                _runs_by_hash[dag_run_labels(dag_id, run_id)["airflow_run_hash"]] = (dag_id, run_id)
        _runs_by_hash.setdefault(run_hash, None)
    found = _runs_by_hash[run_hash]
    return {"dagId": found[0], "runId": found[1]} if found else None


def archive_of(run: dict[str, str] | None) -> dict[str, str] | None:
    """The files the run's ``archive_metrics`` task wrote (its return value), if it ran."""
    if run is None:
        return None
    from sqlalchemy import select

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == run["dagId"],
                XComModel.run_id == run["runId"],
                XComModel.task_id == "archive_metrics",
                XComModel.key == "return_value",
            )
        )
    if value is None:
        return None
    archived = json.loads(value) if isinstance(value, (str, bytes)) else value
    return archived if isinstance(archived, dict) else None


# -- one job -----------------------------------------------------------------------------------


def job_detail(tuning_hook: GenAITuningHook, job_id: str) -> dict[str, Any]:
    """Everything ``get`` returns, plus the run, its archive and Vertex AI's page of the job."""
    job = tuning_hook.get_tuning_job(job_id)
    resource = job_to_dict(job)
    run = dag_run_of(resource.get("labels") or {})
    resource["console"] = {
        "id": job.name.rsplit("/", 1)[-1],
        "state": job_state(job),
        "ended": job_state(job) in ENDED,
        "durationSeconds": _duration_seconds(resource),
        # Vertex AI's own page of the job; the local service has none (its URL is the raw API).
        "vertexUrl": None if tuning_hook.base_url else tuning_hook.job_url(job.name),
        "dagRun": run,
        "archive": archive_of(run),
    }
    return resource


def metric_series(tuning_hook: GenAITuningHook, job_id: str) -> dict[str, Any]:
    """The six series as ``{metric: [[step, value], ...]}`` sorted by step, and whether more will come."""
    job = tuning_hook.get_tuning_job(job_id)
    series: dict[str, list[list[float]]] = {metric: [] for metric in TUNING_METRICS}
    for row in tuning_hook.read_metric_series(job):
        series.setdefault(row["metric"], []).append([row["step"], row["value"]])
    for points in series.values():
        points.sort()
    return {"state": job_state(job), "ended": job_state(job) in ENDED, "series": series}


def cancel(tuning_hook: GenAITuningHook, job_id: str) -> dict[str, Any]:
    tuning_hook.cancel_tuning_job(job_id)
    return {"state": job_state(tuning_hook.get_tuning_job(job_id))}


# -- Try the model -----------------------------------------------------------------------------

# The four settings of the guide's Test panel, with Gemini's ranges and defaults.
TRY_SETTINGS = (
    {"key": "temperature", "label": "Temperature", "min": 0, "max": 2, "step": 0.05, "default": 1.0},
    {"key": "topP", "label": "Top-P", "min": 0, "max": 1, "step": 0.01, "default": 0.95},
    {"key": "topK", "label": "Top-K", "min": 1, "max": 40, "step": 1, "default": 40},
    {"key": "maxOutputTokens", "label": "Max output tokens", "min": 1, "max": 8192, "step": 1, "default": 8192},
)


def generation_config(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings checked against their ranges, as Vertex's ``generationConfig``."""
    config = {}
    for setting in TRY_SETTINGS:
        value = settings.get(setting["key"], setting["default"])
        integral = setting["step"] == 1
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integral and value != int(value)):
            raise BadRequest(f"{setting['label']} must be {'a whole number' if integral else 'a number'}, got {value!r}")
        if not setting["min"] <= value <= setting["max"]:
            raise BadRequest(f"{setting['label']} must be between {setting['min']} and {setting['max']}, got {value}")
        config[setting["key"]] = int(value) if integral else float(value)
    return config


def answer_events(
    tuning_hook: GenAITuningHook, *, model: str, prompt: str, system_instruction: str | None, settings: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """
    One model's answer as events: ``{"text": ...}`` chunks, then ``{"done": {...}}`` with token counts and latency.

    Streamed with ``streamGenerateContent`` where the backend serves it; a backend without it
    (it answers 404 for that method) gets one ``generateContent`` call and the text in one chunk.
    """
    from google.genai.errors import ClientError

    if not prompt.strip():
        raise BadRequest("the prompt is empty")
    request = {
        "model": model,
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "system_instruction": system_instruction or None,
        "generation_config": generation_config(settings),
    }
    started = time.monotonic()
    first_chunk_ms = None
    usage = None
    streamed = True
    try:
        responses: Iterator[Any] = tuning_hook.generate_content_stream(**request)
        first = next(responses, None)  # the request goes out here: a 404 means no streaming
        responses = itertools.chain([first] if first is not None else [], responses)
    except ClientError as error:
        if error.code != 404:
            raise
        streamed = False
        responses = iter([tuning_hook.generate_content(**request)])
    finish_reason = None
    for response in responses:
        if first_chunk_ms is None:
            first_chunk_ms = round((time.monotonic() - started) * 1000)
        if response.text:
            yield {"text": response.text}
        if response.candidates and response.candidates[0].finish_reason:
            finish_reason = str(getattr(response.candidates[0].finish_reason, "value", response.candidates[0].finish_reason))
        if response.usage_metadata:
            usage = response.usage_metadata
    yield {
        "done": {
            "streamed": streamed,
            "firstChunkMs": first_chunk_ms,
            "totalMs": round((time.monotonic() - started) * 1000),
            "promptTokens": usage.prompt_token_count if usage else None,
            "answerTokens": usage.candidates_token_count if usage else None,
            "finishReason": finish_reason,
        }
    }
