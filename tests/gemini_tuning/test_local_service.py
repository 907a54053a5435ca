"""The operators, sensor and trigger against the real local Vertex service, tuning a tiny model."""

from __future__ import annotations

import asyncio
import json
import threading
from types import SimpleNamespace

import pandas as pd
import pytest

from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from gemini_tuning.hooks.tuning import GenAITuningHook
from gemini_tuning.jobs import job_state
from gemini_tuning.operators.archive_metrics import ArchiveTuningMetricsOperator
from gemini_tuning.operators.smoke_test import SmokeTestOperator
from gemini_tuning.operators.tuning_job import (
    CancelTuningJobOperator,
    CreateTuningJobOperator,
    GetTuningJobOperator,
    ListTuningJobsOperator,
    run_labels,
)
from gemini_tuning.sensors.tuning_job import TuningJobSensor
from gemini_tuning.triggers.tuning_job import TuningJobTrigger
from tests.gemini_tuning.helpers import pushed, sample_lines, task_context, wait_for_state

pytestmark = pytest.mark.usefixtures("tuning_connection")


def create_job(datasets, context=None, **overrides) -> tuple[dict, dict]:
    context = context or task_context()
    operator = CreateTuningJobOperator(
        task_id=context["ti"].task_id,
        **{
            "base_model": "gemini-2.0-flash-001",
            "training_dataset_uri": datasets["train"],
            "validation_dataset_uri": datasets["validation"],
            "tuned_model_display_name": "router-test",
            "epoch_count": "1",  # as a rendered template gives it
        }
        | overrides,
    )
    return operator.execute(context), context


def defer(sensor: TuningJobSensor, context) -> TuningJobTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context)
    assert deferred.value.method_name == "execute_complete"
    return deferred.value.trigger


def run_trigger(trigger: TuningJobTrigger) -> list[dict]:
    async def collect():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


@pytest.mark.slow
def test_create_wait_smoke_test_and_archive(datasets, bucket, tmp_path):
    job, create_context = create_job(datasets)
    assert job["labels"].items() >= run_labels(create_context).items()
    assert len(job["labels"]["airflow_request_hash"]) == 32
    assert pushed(create_context)["tuning_job_name"] == job["name"]
    assert pushed(create_context)["tuning_job_url"].endswith(f"/v1/{job['name']}")

    wait_context = task_context(task_id="wait")
    sensor = TuningJobSensor(task_id="wait", job_name=job["name"], poll_interval=0.5, max_poll_interval=1.0)
    trigger = defer(sensor, wait_context)
    events = run_trigger(trigger)
    assert [event["status"] for event in events] == ["success"]
    finished = sensor.execute_complete(wait_context, events[0])
    assert finished["state"] == "JOB_STATE_SUCCEEDED"
    assert finished["tuningDataStats"]["supervisedTuningDataStats"]["tuningDatasetExampleCount"] == 32

    smoke_context = task_context(task_id="smoke")
    held_out = [json.loads(line) for line in sample_lines("heldout.jsonl", 3)]
    results = SmokeTestOperator(
        task_id="smoke", tuning_job_name=job["name"], prompts=held_out, max_output_tokens=4, top_k=5,
        results_uri=str(tmp_path / "run" / "smoke_test.json"),
    ).execute(smoke_context)
    assert results["model"] == finished["tunedModel"]["endpoint"]
    assert results["base_model"] == "gemini-2.0-flash-001"
    assert results["tuned"]["empty_answers"] == 0 and results["tuned"]["scored"] == 3
    assert results["base"]["scored"] == 3
    answers = json.loads((tmp_path / "run" / "smoke_test.json").read_text())["examples"]
    assert len(answers) == 3 and all(example["tuned_answer"] and "base_answer" in example for example in answers)

    sampled = SmokeTestOperator(
        task_id="smoke_sampled",
        tuning_job_name=job["name"],
        validation_dataset_uri=datasets["validation"],  # gs://, read through google_cloud_default
        max_prompts=2,
        max_output_tokens=4,
        compare_with_base_model=False,
    ).execute(task_context(task_id="smoke_sampled"))
    assert sampled["prompt_count"] == 2 and sampled["tuned"]["scored"] == 2 and sampled["base"] is None

    written = ArchiveTuningMetricsOperator(
        task_id="archive", tuning_job_name=job["name"], archive_prefix=str(tmp_path / "run"),
        smoke_test_results_uri=results["results_uri"],
    ).execute(task_context(task_id="archive"))
    assert sorted(written) == ["curves.png", "metrics.csv", "metrics.parquet", "summary.json"]
    frame = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    assert list(frame.columns) == ["metric", "step", "value", "wall_time"]
    assert set(frame["metric"]) == {
        "/train_total_loss",
        "/train_fraction_of_correct_next_step_preds",
        "/train_num_predictions",
        "/eval_total_loss",
        "/eval_fraction_of_correct_next_step_preds",
        "/eval_num_predictions",
    }
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == len(frame)
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["job"]["name"] == job["name"]
    assert summary["hyperparameters"]["epochCount"] == 1
    assert summary["data_stats"]["tuningDatasetExampleCount"] == 32
    last_train_step = int(frame[frame["metric"] == "/train_total_loss"]["step"].max())
    assert summary["final_metrics"]["/train_total_loss"]["step"] == last_train_step
    assert summary["smoke_test"] == results

    in_bucket = ArchiveTuningMetricsOperator(
        task_id="archive_gcs", tuning_job_name=job["name"], archive_prefix=f"gs://{bucket.name}/archive/run-1"
    ).execute(task_context(task_id="archive_gcs"))
    assert in_bucket["summary.json"] == f"gs://{bucket.name}/archive/run-1/summary.json"
    assert json.loads(bucket.download("archive/run-1/summary.json"))["job"]["name"] == job["name"]
    assert bucket.download("archive/run-1/curves.png")[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_retried_create_reuses_the_first_job(datasets):
    hook = GenAITuningHook()
    first, context = create_job(datasets, epoch_count=None)  # unset: the service's recommendation
    try:
        context["ti"].try_number = 2
        second, _ = create_job(datasets, context=context, epoch_count=None)  # the same request
        assert second["name"] == first["name"]
        assert [job.name for job in hook.find_tuning_jobs_by_labels(run_labels(context))] == [first["name"]]
        listed = ListTuningJobsOperator(
            task_id="list", filter=f'labels.airflow_run_hash="{run_labels(context)["airflow_run_hash"]}"'
        ).execute(task_context())
        assert [job["name"] for job in listed] == [first["name"]]
        assert GetTuningJobOperator(task_id="get", job_name=first["name"].rsplit("/", 1)[-1]).execute(
            task_context()
        )["name"] == first["name"]
    finally:
        CancelTuningJobOperator(task_id="cancel", job_name=first["name"]).execute(task_context())
    assert wait_for_state(hook, first["name"], {"JOB_STATE_CANCELLED"}) == "JOB_STATE_CANCELLED"

    # A cancelled job is not adopted: the next try starts a new one.
    context["ti"].try_number = 3
    third, _ = create_job(datasets, context=context, epoch_count=None)
    assert third["name"] != first["name"]
    hook.cancel_tuning_job(third["name"])
    assert len(hook.find_tuning_jobs_by_labels(run_labels(context))) == 2


@pytest.mark.slow
def test_a_create_that_waits_lives_as_long_as_its_job_and_a_retry_adopts_it(datasets):
    """The DAG's shape: create holds the task (its pool slot) until the job ends; the sensor then confirms."""
    hook = GenAITuningHook()
    context = task_context()
    create = CreateTuningJobOperator(
        task_id=context["ti"].task_id, base_model="gemini-2.0-flash-001", training_dataset_uri=datasets["train"],
        validation_dataset_uri=datasets["validation"], epoch_count=1, wait_for_completion=True, poll_interval=0.2,
        max_poll_interval=0.5,
    )
    with pytest.raises(TaskDeferred) as first:
        create.execute(context)
    job_name = pushed(context)["tuning_job_name"]
    context["ti"].try_number = 2  # e.g. the worker died just after deferring: the retry adopts the job
    with pytest.raises(TaskDeferred) as second:
        create.execute(context)
    assert first.value.trigger.job_name == second.value.trigger.job_name == job_name
    assert [job.name for job in hook.find_tuning_jobs_by_labels(run_labels(context))] == [job_name]

    [event] = run_trigger(second.value.trigger)
    ended = create.execute_complete(context, event)
    assert ended["name"] == job_name and ended["state"] == "JOB_STATE_SUCCEEDED" and ended["endTime"]
    confirmed = TuningJobSensor(task_id="wait", job_name=job_name).execute(task_context(task_id="wait"))
    assert confirmed["state"] == "JOB_STATE_SUCCEEDED"  # ended already: returned without deferring


def deferred_wait(job_name: str) -> TuningJobTrigger:
    """The sensor's trigger, with the task instance the triggerer gives it."""
    trigger = defer(TuningJobSensor(task_id="wait", job_name=job_name, poll_interval=0.5), task_context())
    trigger.task_instance = SimpleNamespace(
        id="ti-1", dag_id="d", task_id="wait", run_id="r", map_index=-1, try_number=1, context_carrier=None
    )
    return trigger


def in_triggerer(trigger: TuningJobTrigger):
    """Airflow's own TriggerRunner running ``trigger`` as trigger 1; returns the runner and its task."""
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    runner = TriggerRunner()
    task = asyncio.create_task(runner.run_trigger(1, trigger))
    runner.triggers[1] = {"task": task, "name": "wait", "events": 0, "is_watcher": False}
    return runner, task


async def kill_as_a_user(runner) -> None:
    """What the triggerer does once a user marked the task failed: it drains its to_cancel queue."""
    runner.to_cancel.append(1)
    await runner.cancel_triggers()


@pytest.mark.slow
def test_killing_the_deferred_wait_cancels_the_job(datasets):
    """A restart leaves the job running, a user's kill cancels it."""
    hook = GenAITuningHook()
    job, _ = create_job(datasets, epoch_count="50")
    trigger = deferred_wait(job["name"])
    assert wait_for_state(hook, job["name"], {"JOB_STATE_RUNNING"}) == "JOB_STATE_RUNNING"

    async def run_then_stop(user_action: bool):
        runner, task = in_triggerer(trigger)
        await asyncio.sleep(1.5)  # a few polls
        if user_action:
            await kill_as_a_user(runner)
        else:  # the triggerer shuts down or hands the trigger to another triggerer
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_then_stop(user_action=False))
    assert job_state(hook.get_tuning_job(job["name"])) == "JOB_STATE_RUNNING"

    asyncio.run(run_then_stop(user_action=True))
    assert wait_for_state(hook, job["name"], {"JOB_STATE_CANCELLED"}) == "JOB_STATE_CANCELLED"


@pytest.mark.slow
@pytest.mark.parametrize("blocking_call", ["__init__", "get_genai_client"])
def test_a_kill_while_the_trigger_builds_its_client_cancels_the_job(datasets, monkeypatch, blocking_call):
    """
    The trigger builds its hook and client in a thread; a kill landing then must still reach on_kill.

    The triggerer tells a user's kill from a shutdown by the cancellation's message, which asgiref's
    sync_to_async dropped: the job kept running (a clean-clone CI run caught it, 1 run in many).
    """
    hook = GenAITuningHook()
    job, _ = create_job(datasets, epoch_count="50")
    trigger = deferred_wait(job["name"])
    entered, release = threading.Event(), threading.Event()
    original = getattr(GenAITuningHook, blocking_call)

    def blocks_the_first_time(*args, **kwargs):
        if not entered.is_set():  # the trigger's own hook; on_kill's hook then passes
            entered.set()
            release.wait(timeout=120)
        return original(*args, **kwargs)

    monkeypatch.setattr(GenAITuningHook, blocking_call, blocks_the_first_time)

    async def kill_while_blocked():
        runner, task = in_triggerer(trigger)
        assert await asyncio.to_thread(entered.wait, 120)
        await kill_as_a_user(runner)  # while the trigger's thread still blocks
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(kill_while_blocked())
    # on_kill ran before the trigger's task ended, so the cancel was already asked for
    assert job_state(hook.get_tuning_job(job["name"])) in {"JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"}
    assert wait_for_state(hook, job["name"], {"JOB_STATE_CANCELLED"}) == "JOB_STATE_CANCELLED"


def test_killing_a_poking_sensor_cancels_the_job(datasets):
    hook = GenAITuningHook()
    job, _ = create_job(datasets, epoch_count="50")
    sensor = TuningJobSensor(task_id="wait", job_name=job["name"], deferrable=False, poke_interval=0.1, timeout=0.5)
    with pytest.raises(Exception, match="timed out|Timeout|timeout"):
        sensor.execute(task_context())  # its timeout cancels the job (cancel_on_timeout)
    assert wait_for_state(hook, job["name"], {"JOB_STATE_CANCELLED"}) == "JOB_STATE_CANCELLED"

    other, _ = create_job(datasets, epoch_count="50")
    sensor = TuningJobSensor(task_id="wait", job_name=other["name"], deferrable=False)
    sensor._watched_job = other["name"]  # what execute() sets before poking
    sensor.on_kill()
    assert wait_for_state(hook, other["name"], {"JOB_STATE_CANCELLED"}) == "JOB_STATE_CANCELLED"


@pytest.mark.slow
def test_a_failed_job_fails_the_sensor_with_its_message(bucket):
    broken = bucket.upload("broken/train.jsonl", sample_lines("train.jsonl", 1)[0] + '\n{"contents": "not a list"}\n')
    job, _ = create_job({"train": broken, "validation": None})
    hook = GenAITuningHook()
    assert wait_for_state(hook, job["name"], {"JOB_STATE_FAILED"}) == "JOB_STATE_FAILED"
    message = hook.get_tuning_job(job["name"]).error.message
    assert "line 2" in message

    sensor = TuningJobSensor(task_id="wait", job_name=job["name"], poll_interval=0.5)
    [event] = run_trigger(TuningJobTrigger(job_name=job["name"], poll_interval=0.1))
    assert event["status"] == "error" and event["job_state"] == "JOB_STATE_FAILED"
    with pytest.raises(AirflowFailException, match="line 2") as failed:
        sensor.execute_complete(task_context(), event)
    assert message in str(failed.value)
    with pytest.raises(AirflowFailException, match="JOB_STATE_FAILED"):
        sensor.execute(task_context())  # an already-ended job fails at once, without deferring


def test_smoke_test_fails_below_threshold(datasets, tuning_connection, tmp_path):
    """The tiny model answers gibberish: an exact-match threshold of 1.0 must fail, with results written."""
    context = task_context(task_id="smoke")
    operator = SmokeTestOperator(
        task_id="smoke",
        model="gemini-2.0-flash-001",
        compare_with_base_model=False,
        prompts=[{"prompt": "Say yes.", "expected": "yes"}, "Say no."],
        max_output_tokens=3,
        min_score=1.0,
        results_uri=str(tmp_path / "smoke_test.json"),
    )
    with pytest.raises(Exception, match="below the threshold 1.000"):
        operator.execute(context)
    results = json.loads((tmp_path / "smoke_test.json").read_text())
    assert results["tuned"]["scored"] == 1 and results["prompt_count"] == 2 and len(results["examples"]) == 2
