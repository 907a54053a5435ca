"""A failed run cancels the tuning jobs it started, and only those (against the real local service)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gemini_tuning.callbacks import cancel_tuning_jobs_of_run
from gemini_tuning.hooks.tuning import GenAITuningHook
from gemini_tuning.jobs import ENDED, job_state
from tests.gemini_tuning.helpers import task_context, wait_for_state
from tests.gemini_tuning.test_local_service import create_job

pytestmark = pytest.mark.usefixtures("tuning_connection")


def test_a_failed_run_cancels_its_unfinished_jobs_and_leaves_other_runs_alone(datasets):
    hook = GenAITuningHook()
    mine, context = create_job(datasets, epoch_count="3")
    other, _ = create_job(datasets, context=task_context(dag_id=context["ti"].dag_id), epoch_count="3")
    failed_run = SimpleNamespace(dag_id=context["ti"].dag_id, run_id=context["ti"].run_id)
    try:
        cancelled = cancel_tuning_jobs_of_run({"dag_run": failed_run, "params": {}})
        assert cancelled == [mine["name"]]
        assert wait_for_state(hook, mine["name"], {"JOB_STATE_CANCELLED"}) == "JOB_STATE_CANCELLED"
        assert cancel_tuning_jobs_of_run({"dag_run": failed_run, "params": {}}) == []  # ended: nothing to do
        assert wait_for_state(hook, other["name"], {"JOB_STATE_CANCELLED"}, timeout=1) != "JOB_STATE_CANCELLED"
    finally:
        hook.cancel_tuning_job(other["name"])


def test_marking_a_run_failed_cancels_its_jobs_through_the_plugins_listener(datasets):
    """No failure callback runs when a person marks a run failed; the listener cancels instead."""
    from gemini_tuning.listeners import RunFailedListener
    from gemini_tuning.plugin import GeminiTuningPlugin

    [listener] = [item for item in GeminiTuningPlugin.listeners if isinstance(item, RunFailedListener)]
    hook = GenAITuningHook()
    job, context = create_job(datasets, epoch_count="3")
    run = SimpleNamespace(dag_id=context["ti"].dag_id, run_id=context["ti"].run_id, conf={})
    try:
        listener.on_dag_run_failed(dag_run=run, msg="task_failure")  # the scheduler's: the callback's job
        assert wait_for_state(hook, job["name"], {"JOB_STATE_CANCELLED"}, timeout=1) != "JOB_STATE_CANCELLED"
        listener.on_dag_run_failed(dag_run=run, msg="Dag Run's state was manually set to `failed`.")
        assert wait_for_state(hook, job["name"], {"JOB_STATE_CANCELLED"}) == "JOB_STATE_CANCELLED"
    finally:
        if job_state(hook.get_tuning_job(job["name"])) not in ENDED:
            hook.cancel_tuning_job(job["name"])
