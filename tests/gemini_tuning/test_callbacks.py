"""A failed run cancels the tuning jobs it started, and only those (against the real local service)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gemini_tuning.callbacks import cancel_tuning_jobs_of_run
from gemini_tuning.hooks.tuning import GenAITuningHook
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
