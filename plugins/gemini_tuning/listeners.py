"""Airflow listener of the plugin: a run marked failed by a person cancels its tuning jobs."""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl
from gemini_tuning.callbacks import cancel_jobs_of_run

log = logging.getLogger(__name__)
# What Airflow's API passes when a person sets a run's state (the scheduler passes e.g. "task_failure").
MANUAL_STATE_CHANGE = "manually set"


class RunFailedListener:
    """Cancel a run's jobs when a person marks the run failed (no failure callback runs then)."""

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        if MANUAL_STATE_CHANGE not in (msg or ""):
            return  # a task failed the run: its on_failure_callback cancels, off the scheduler's loop
        try:
            cancel_jobs_of_run(dag_run.dag_id, dag_run.run_id, (dag_run.conf or {}).get("region"))
        except Exception:  # a listener must not break the API call that marked the run
            log.exception("Could not cancel the tuning jobs of run %s", dag_run.run_id)
