"""
The tuning job as data: its states, labels and metric series, as Vertex names them.

Light on purpose (no client library): DAG files, operators and the triggerer import it at parse
time, and the hook module, which needs the Google provider, is imported only when a task runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.genai.types import TuningJob

DEFAULT_CONN_ID = "gemini_tuning_default"

# The six series a supervised tuning job reports (Vertex's names, also served by the local service).
TRAIN_METRICS = (
    "/train_total_loss",
    "/train_fraction_of_correct_next_step_preds",
    "/train_num_predictions",
)
EVAL_METRICS = (
    "/eval_total_loss",
    "/eval_fraction_of_correct_next_step_preds",
    "/eval_num_predictions",
)
TUNING_METRICS = TRAIN_METRICS + EVAL_METRICS

# Vertex's job states that end a job; the others (QUEUED, PENDING, RUNNING, CANCELLING) are in flight.
SUCCEEDED = "JOB_STATE_SUCCEEDED"
CANCELLING = "JOB_STATE_CANCELLING"  # asked to stop: neither worth adopting nor cancelling again
ENDED_UNSUCCESSFULLY = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})
ENDED = ENDED_UNSUCCESSFULLY | {SUCCEEDED}

_LABEL_VALUE_INVALID = re.compile(r"[^a-z0-9_-]")


def job_state(job: TuningJob | dict) -> str:
    """The job's state as Vertex spells it (``JOB_STATE_...``), from a TuningJob or its dict."""
    state = job.get("state") if isinstance(job, dict) else job.state
    return str(getattr(state, "value", state) or "JOB_STATE_UNSPECIFIED")


def failure_message(job: TuningJob) -> str:
    """Why a job ended without success, in the job's own words."""
    reason = job.error.message if job.error and job.error.message else "no error message"
    return f"Tuning job {job.name} ended {job_state(job)}: {reason}"


def job_to_dict(job: TuningJob) -> dict[str, Any]:
    """The TuningJob resource as Vertex's camelCase JSON, ready for XCom or an archive."""
    return job.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"sdk_http_response"})


SUMMARY_FIELDS = ("name", "state", "tunedModelDisplayName", "baseModel", "createTime", "endTime", "labels")


def job_summary(job: TuningJob) -> dict[str, Any]:
    """The few fields of a job a listing needs (camelCase, as in the resource)."""
    resource = job_to_dict(job)
    return {field: resource[field] for field in SUMMARY_FIELDS if field in resource}


def label_value(text: str) -> str:
    """Make ``text`` a valid Vertex label value: lowercase letters, digits, ``_`` and ``-``, at most 63."""
    return _LABEL_VALUE_INVALID.sub("-", text.lower())[:63]
