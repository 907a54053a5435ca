"""A failed run must not leave a tuning job training (and billing) behind.

Two ways a run fails, two entry points to the same cancel: a task failing the run calls the DAG's
``on_failure_callback`` (``cancel_tuning_jobs_of_run``); a person marking the run failed in the UI
or the REST API calls no callback, only Airflow's listeners, so the plugin registers
``gemini_tuning.listeners.RunFailedListener`` for that.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


def cancel_jobs_of_run(
    dag_id: str, run_id: str, region: str | None = None, gcp_conn_id: str | None = None
) -> list[str]:
    """
    Cancel every tuning job this DAG run started that has not ended; returns their names.

    Jobs are found by the labels CreateTuningJobOperator puts on them (DAG id and run hash), so
    this works whichever task failed and however many jobs an epoch sweep started.
    """
    from gemini_tuning.hooks.tuning import GenAITuningHook
    from gemini_tuning.jobs import CANCELLING, DEFAULT_CONN_ID, ENDED, job_state
    from gemini_tuning.operators.tuning_job import dag_run_labels

    hook = GenAITuningHook(gcp_conn_id=gcp_conn_id or DEFAULT_CONN_ID, location=region or None)
    cancelled = []
    for job in hook.find_tuning_jobs_by_labels(dag_run_labels(dag_id, run_id)):
        if job_state(job) in ENDED or job_state(job) == CANCELLING:
            continue
        log.warning("Run %s failed: cancelling its tuning job %s (%s)", run_id, job.name, job_state(job))
        hook.cancel_tuning_job(job.name)
        cancelled.append(job.name)
    return cancelled


def cancel_tuning_jobs_of_run(context: Context, gcp_conn_id: str | None = None) -> list[str]:
    """The DAG's ``on_failure_callback``: cancel the failed run's unfinished jobs."""
    dag_run = context["dag_run"]
    region = (context.get("params") or {}).get("region")
    return cancel_jobs_of_run(dag_run.dag_id, dag_run.run_id, region, gcp_conn_id)
