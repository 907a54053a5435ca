"""Airflow listeners of the plugin: a run marked failed by a person cancels its tuning jobs; the
tuning-jobs pool exists wherever Airflow's components run."""

from __future__ import annotations

import logging
import sys
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


class TuningJobsPoolListener:
    """Create the tuning-jobs pool when a scheduler, triggerer or dag-processor starts, if it is missing.

    Without the pool, create_tuning_job would stay scheduled for ever (the scheduler only logs
    that the pool does not exist); an existing pool is left as its administrator set it.
    """

    @hookimpl
    def on_starting(self, component: Any) -> None:
        # Task processes call this hook too, with no database to reach: act only for Airflow's
        # jobs (the scheduler, triggerer and dag-processor), whose module those processes load.
        jobs = sys.modules.get("airflow.jobs.job")
        if jobs is None or not isinstance(component, jobs.Job):
            return
        from gemini_tuning.pool import ensure_tuning_jobs_pool

        try:
            log.info(ensure_tuning_jobs_pool())
        except Exception:  # a listener must not stop the component from starting
            log.exception("Could not check the tuning-jobs pool")
