"""TuningJobTrigger in the Google provider's style: serialization, state mapping, retries, kills."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from unittest import mock

import httpx
import pytest
from google.genai import errors, types

from airflow.sdk._shared.module_loading import import_string
from gemini_tuning.triggers.tuning_job import TuningJobTrigger

JOB = "projects/p/locations/us-central1/tuningJobs/42"
HOOK = "gemini_tuning.triggers.tuning_job.GenAITuningAsyncHook"


def tuning_job(state: str, message: str | None = None) -> types.TuningJob:
    return types.TuningJob(
        name=JOB,
        state=state,
        error=types.GoogleRpcStatus(code=3, message=message) if message else None,
        tuned_model=types.TunedModel(endpoint="projects/p/locations/us-central1/endpoints/7")
        if state == "JOB_STATE_SUCCEEDED"
        else None,
    )


def make_trigger(**overrides) -> TuningJobTrigger:
    kwargs = {"job_name": JOB, "poll_interval": 0.0, "max_poll_interval": 0.0} | overrides
    return TuningJobTrigger(**kwargs)


def run_events(trigger: TuningJobTrigger) -> list[dict]:
    async def collect():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


@pytest.fixture
def hook():
    with mock.patch(HOOK, autospec=True) as hook_class:
        instance = hook_class.return_value
        instance.latest_metrics.return_value = None
        yield instance


def test_serialize_round_trip():
    trigger = make_trigger(
        conn_id="other", location="europe-west4", deadline=1234.5, cancel_on_timeout=False, max_transient_errors=3
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "gemini_tuning.triggers.tuning_job.TuningJobTrigger"
    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["deadline"] == 1234.5 and kwargs["cancel_on_timeout"] is False


def test_success_event_carries_the_job(hook):
    hook.get_tuning_job.side_effect = [
        tuning_job("JOB_STATE_QUEUED"),
        tuning_job("JOB_STATE_PENDING"),
        tuning_job("JOB_STATE_RUNNING"),
        tuning_job("JOB_STATE_SUCCEEDED"),
    ]
    events = run_events(make_trigger())
    assert len(events) == 1
    assert events[0]["status"] == "success"
    assert events[0]["job"]["tunedModel"]["endpoint"].endswith("/endpoints/7")
    assert hook.get_tuning_job.await_count == 4
    hook.cancel_tuning_job.assert_not_called()


@pytest.mark.parametrize("state", ["JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"])
def test_unsuccessful_end_states_fail_with_the_job_message(hook, state):
    hook.get_tuning_job.side_effect = [tuning_job("JOB_STATE_RUNNING"), tuning_job(state, "line 3: no model turn")]
    events = run_events(make_trigger())
    assert events == [
        {
            "status": "error",
            "job_name": JOB,
            "job_state": state,
            "message": f"Tuning job {JOB} ended {state}: line 3: no model turn",
        }
    ]


def test_cancelling_is_still_in_flight(hook):
    hook.get_tuning_job.side_effect = [tuning_job("JOB_STATE_CANCELLING"), tuning_job("JOB_STATE_CANCELLED", "user")]
    [event] = run_events(make_trigger())
    assert event["job_state"] == "JOB_STATE_CANCELLED"


@pytest.mark.parametrize(
    "transient",
    [
        errors.ServerError(503, {"error": {"code": 503, "message": "unavailable", "status": "UNAVAILABLE"}}),
        errors.ClientError(429, {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}),
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectError("connection refused"),
        TimeoutError(),
    ],
    ids=["503", "429", "read-timeout", "connect-error", "timeout"],
)
def test_transient_errors_are_retried(hook, transient):
    hook.get_tuning_job.side_effect = [transient, transient, tuning_job("JOB_STATE_SUCCEEDED")]
    [event] = run_events(make_trigger(max_transient_errors=2))
    assert event["status"] == "success"
    assert hook.get_tuning_job.await_count == 3


def test_transient_errors_are_bounded(hook):
    unavailable = errors.ServerError(503, {"error": {"code": 503, "message": "unavailable"}})
    hook.get_tuning_job.side_effect = [unavailable] * 4
    [event] = run_events(make_trigger(max_transient_errors=3))
    assert event["status"] == "error"
    assert "unavailable" in event["message"]
    assert hook.get_tuning_job.await_count == 4


def test_a_success_resets_the_transient_error_count(hook):
    unavailable = errors.ServerError(500, {"error": {"code": 500, "message": "oops"}})
    hook.get_tuning_job.side_effect = [
        unavailable,
        tuning_job("JOB_STATE_RUNNING"),
        unavailable,
        tuning_job("JOB_STATE_SUCCEEDED"),
    ]
    [event] = run_events(make_trigger(max_transient_errors=1))
    assert event["status"] == "success"


def test_permanent_errors_are_not_retried(hook):
    hook.get_tuning_job.side_effect = errors.ClientError(404, {"error": {"code": 404, "message": "no such job"}})
    [event] = run_events(make_trigger())
    assert event["status"] == "error" and "no such job" in event["message"]
    assert hook.get_tuning_job.await_count == 1


def test_polls_back_off_up_to_the_longest_interval(hook):
    hook.get_tuning_job.side_effect = [tuning_job("JOB_STATE_RUNNING")] * 5 + [tuning_job("JOB_STATE_SUCCEEDED")]
    with mock.patch("gemini_tuning.triggers.tuning_job.asyncio.sleep", new_callable=mock.AsyncMock) as sleep:
        run_events(make_trigger(poll_interval=10.0, backoff_factor=2.0, max_poll_interval=50.0))
    assert [c.args[0] for c in sleep.await_args_list] == [10.0, 20.0, 40.0, 50.0, 50.0]


def test_the_poll_wakes_when_the_job_should_end_not_a_whole_interval_later(hook):
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    running = tuning_job("JOB_STATE_RUNNING").model_copy(update={
        "start_time": now - timedelta(seconds=90),
        "tuning_data_stats": types.TuningDataStats(
            supervised_tuning_data_stats=types.SupervisedTuningDataStats(tuning_step_count=100)),
    })
    hook.get_tuning_job.side_effect = [running, running, tuning_job("JOB_STATE_SUCCEEDED")]
    # no step yet: the first interval; then 90 of 100 steps in 90 s: about 10 s left, not the next 50
    hook.latest_metrics.side_effect = [None, {"/train_total_loss": {"step": 90, "value": 0.5, "wall_time": now.isoformat()}}]
    with mock.patch("gemini_tuning.triggers.tuning_job.asyncio.sleep", new_callable=mock.AsyncMock) as sleep:
        run_events(make_trigger(poll_interval=5.0, backoff_factor=10.0, max_poll_interval=60.0))
    first, second = (c.args[0] for c in sleep.await_args_list)
    assert first == 5.0 and 9.0 <= second <= 10.0


@pytest.mark.parametrize("cancel_on_timeout", [True, False])
def test_deadline_gives_up_and_cancels_if_asked(hook, cancel_on_timeout):
    hook.get_tuning_job.return_value = tuning_job("JOB_STATE_RUNNING")
    [event] = run_events(make_trigger(deadline=time.time() - 1, cancel_on_timeout=cancel_on_timeout))
    assert event["status"] == "timeout"
    assert hook.cancel_tuning_job.await_count == (1 if cancel_on_timeout else 0)


def test_a_failed_cancel_at_the_deadline_still_yields_one_timeout_event(hook):
    hook.get_tuning_job.return_value = tuning_job("JOB_STATE_RUNNING")
    hook.cancel_tuning_job.side_effect = errors.ServerError(503, {"error": {"code": 503, "message": "busy"}})
    [event] = run_events(make_trigger(deadline=time.time() - 1))
    assert event["status"] == "timeout" and "cancelling the job failed" in event["message"]


def test_progress_is_logged_with_step_and_loss(hook, capsys):
    hook.get_tuning_job.side_effect = [tuning_job("JOB_STATE_RUNNING"), tuning_job("JOB_STATE_SUCCEEDED")]
    hook.latest_metrics.return_value = {
        "/train_total_loss": {"step": 12, "value": 1.23456},
        "/eval_total_loss": {"step": 10, "value": 1.5},
    }
    run_events(make_trigger())
    assert "JOB_STATE_RUNNING, step 12, train loss 1.2346, eval loss 1.5000" in capsys.readouterr().out


def test_triggerer_shutdown_leaves_the_job_running(hook):
    """A CancelledError alone (triggerer restart or redistribution) must not cancel the job."""
    hook.get_tuning_job.return_value = tuning_job("JOB_STATE_RUNNING")

    async def cancel_mid_wait():
        trigger = make_trigger(poll_interval=60.0)
        task = asyncio.create_task(anext(trigger.run()))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_mid_wait())
    hook.cancel_tuning_job.assert_not_called()


def _kill(trigger: TuningJobTrigger, map_index: int = -1):
    """Kill as the triggerer does after a user action (it calls on_kill for nothing else)."""
    trigger.task_instance = SimpleNamespace(dag_id="d", task_id="t", run_id="r", map_index=map_index)
    key = "t" if map_index < 0 else f"t_{map_index}"  # how the execution API keys mapped task instances
    with mock.patch(
        "airflow.sdk.execution_time.task_runner.RuntimeTaskInstance.get_task_states",
        return_value={"r": {key: "failed"}},
    ) as get_task_states:
        asyncio.run(trigger.on_kill())
    # Airflow 3.3 calls on_kill only for a user's action: no state to look up, no traceback to log.
    get_task_states.assert_not_called()


@pytest.mark.parametrize("map_index", [-1, 0, 3], ids=["unmapped", "mapped-0", "mapped-3"])
def test_on_kill_cancels_the_job_of_a_mapped_or_unmapped_task(hook, map_index):
    _kill(make_trigger(), map_index)
    hook.cancel_tuning_job.assert_awaited_once_with(JOB)


def test_on_kill_respects_cancel_on_kill(hook):
    _kill(make_trigger(cancel_on_kill=False))
    hook.cancel_tuning_job.assert_not_called()
