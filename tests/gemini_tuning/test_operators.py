"""Operator logic that needs no service: labels, hyperparameters, scoring, the metrics archive."""

from __future__ import annotations

import json
import threading
from unittest import mock

import pandas as pd
import pytest
from google.genai import types

from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred
from gemini_tuning.hooks.tuning import GenAITuningHook
from gemini_tuning.operators.archive_metrics import (
    ArchiveTuningMetricsOperator,
    final_metrics,
    metrics_frame,
    plot_curves,
)
from gemini_tuning.operators.smoke_test import SmokeTestOperator, is_correct, normalize
from gemini_tuning.operators.tuning_job import (
    REQUEST_HASH_LABEL,
    CreateTuningJobOperator,
    adapter_size_name,
    request_hash,
    run_labels,
)
from tests.gemini_tuning.helpers import pushed, task_context

JOB = "projects/p/locations/us-central1/tuningJobs/1"


def test_run_labels_are_the_same_on_every_try_and_differ_between_runs():
    context = task_context(dag_id="Gemini.Tuning", run_id="manual__2026-01-01T00:00:00+00:00", task_id="create")
    first = run_labels(context)
    context["ti"].try_number = 3
    assert run_labels(context) == first
    assert first["airflow_dag_id"] == "gemini-tuning" and first["airflow_task_id"] == "create"
    other_run = task_context(dag_id="Gemini.Tuning", run_id="manual__other")
    assert run_labels(other_run)["airflow_run_hash"] != first["airflow_run_hash"]
    mapped = task_context(run_id="r")
    mapped["ti"].map_index = 2
    assert run_labels(mapped)["airflow_task_id"] == "create-2"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (4, "ADAPTER_SIZE_FOUR"),
        ("16", "ADAPTER_SIZE_SIXTEEN"),
        ("adapter_size_one", "ADAPTER_SIZE_ONE"),
    ],
)
def test_adapter_sizes(value, expected):
    assert adapter_size_name(value) == expected


def test_bad_hyperparameters_say_which_field():
    with pytest.raises(ValueError, match="adapter_size must be one of"):
        adapter_size_name(3)
    operator = CreateTuningJobOperator(
        task_id="c", base_model="m", training_dataset_uri="gs://b/t.jsonl", epoch_count="four"
    )
    with mock.patch.object(CreateTuningJobOperator, "hook") as hook:
        hook.find_tuning_jobs_by_labels.return_value = []
        with pytest.raises(ValueError, match="epoch_count must be int, got 'four'"):
            operator.execute(task_context())
        hook.create_tuning_job.assert_not_called()


def test_create_reuses_running_and_succeeded_jobs_but_not_failed_ones():
    failed = types.TuningJob(name="failed", state="JOB_STATE_FAILED")
    running = types.TuningJob(name="running", state="JOB_STATE_RUNNING")
    operator = CreateTuningJobOperator(task_id="c", base_model="m", training_dataset_uri="gs://b/t.jsonl")
    with mock.patch.object(CreateTuningJobOperator, "hook") as hook:
        hook.job_url.return_value = "http://svc/v1/running"
        hook.find_tuning_jobs_by_labels.return_value = [failed, running]
        context = task_context()
        assert operator.execute(context)["name"] == "running"
        hook.create_tuning_job.assert_not_called()
        assert pushed(context) == {"tuning_job_name": "running", "tuning_job_url": "http://svc/v1/running"}

        hook.find_tuning_jobs_by_labels.return_value = [failed]
        hook.create_tuning_job.return_value = types.TuningJob(name="new", state="JOB_STATE_QUEUED")
        assert operator.execute(task_context())["name"] == "new"


def _create(**overrides) -> CreateTuningJobOperator:
    kwargs = {"task_id": "c", "base_model": "m", "training_dataset_uri": "gs://b/t.jsonl"} | overrides
    return CreateTuningJobOperator(**kwargs)


def test_a_retry_adopts_only_a_job_made_from_the_same_request():
    """A run cleared after its dataset changed must not reuse the job trained on the old one."""
    context = task_context()
    with mock.patch.object(CreateTuningJobOperator, "hook") as hook:
        hook.find_tuning_jobs_by_labels.return_value = []
        hook.create_tuning_job.return_value = types.TuningJob(name="first", state="JOB_STATE_RUNNING")
        _create().execute(context)
        first_labels = hook.create_tuning_job.call_args.kwargs["labels"]
        assert first_labels[REQUEST_HASH_LABEL] == request_hash(_create()._request())

        _create().execute(context)  # the same request again
        assert hook.find_tuning_jobs_by_labels.call_args.args[0] == {
            key: value for key, value in first_labels.items()
        }
        for changed in ({"training_dataset_uri": "gs://b/other.jsonl"}, {"epoch_count": 3}, {"base_model": "n"}):
            _create(**changed).execute(context)
            looked_up = hook.find_tuning_jobs_by_labels.call_args.args[0]
            assert looked_up[REQUEST_HASH_LABEL] != first_labels[REQUEST_HASH_LABEL], changed
            assert looked_up["airflow_run_hash"] == first_labels["airflow_run_hash"]


def test_waiting_for_completion_defers_on_the_job_and_returns_it_as_it_ended():
    """The create task lives as long as its job, so its pool slot bounds live jobs."""
    operator = _create(wait_for_completion=True, poll_interval=2, max_poll_interval=8, job_timeout=60,
                       pool="gemini_tuning_jobs")
    with mock.patch.object(CreateTuningJobOperator, "hook") as hook:
        hook.find_tuning_jobs_by_labels.return_value = []
        hook.create_tuning_job.return_value = types.TuningJob(name=JOB, state="JOB_STATE_PENDING")
        context = task_context()
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(context)
        assert pushed(context)["tuning_job_name"] == JOB  # pushed before the wait: kills and retries find it
        trigger = deferred.value.trigger
        assert deferred.value.method_name == "execute_complete"
        assert (trigger.job_name, trigger.poll_interval, trigger.max_poll_interval) == (JOB, 2, 8)
        assert trigger.cancel_on_kill and trigger.cancel_on_timeout and trigger.deadline is not None

        hook.find_tuning_jobs_by_labels.return_value = [types.TuningJob(name=JOB, state="JOB_STATE_SUCCEEDED")]
        assert operator.execute(task_context())["state"] == "JOB_STATE_SUCCEEDED"  # adopted, ended: no wait

        succeeded = {"name": JOB, "state": "JOB_STATE_SUCCEEDED"}
        assert operator.execute_complete(context, {"status": "success", "job_name": JOB, "message": "ok",
                                                   "job": succeeded}) == succeeded
        # A job that failed has still ended: the slot is free and the wait (the sensor) judges it.
        hook.get_tuning_job.return_value = types.TuningJob(name=JOB, state="JOB_STATE_FAILED")
        ended = operator.execute_complete(context, {"status": "error", "job_name": JOB, "message": "failed",
                                                    "job_state": "JOB_STATE_FAILED"})
        assert ended == {"name": JOB, "state": "JOB_STATE_FAILED"}
        with pytest.raises(AirflowFailException, match="cancelled"):
            operator.execute_complete(context, {"status": "timeout", "job_name": JOB, "message": "cancelled"})
        with pytest.raises(AirflowException, match="Could not read") as unread:
            operator.execute_complete(context, {"status": "error", "job_name": JOB,
                                                "message": "Could not read tuning job"})
        assert not isinstance(unread.value, AirflowFailException)  # retried: the retry adopts the job


def test_without_waiting_the_create_returns_at_once():
    with mock.patch.object(CreateTuningJobOperator, "hook") as hook:
        hook.find_tuning_jobs_by_labels.return_value = []
        hook.create_tuning_job.return_value = types.TuningJob(name=JOB, state="JOB_STATE_PENDING")
        assert _create().execute(task_context())["state"] == "JOB_STATE_PENDING"


def test_text_fields_stay_strings_under_native_rendering():
    """render_template_as_native_obj turns "2024" into 2024; the create call needs strings."""
    operator = _create(tuned_model_display_name=2024, description=7, base_model="gemini-2.5-flash",
                       labels={"team": 42})
    with mock.patch.object(CreateTuningJobOperator, "hook") as hook:
        hook.find_tuning_jobs_by_labels.return_value = []
        hook.create_tuning_job.return_value = types.TuningJob(name="j", state="JOB_STATE_QUEUED")
        operator.execute(task_context())
    call = hook.create_tuning_job.call_args.kwargs
    assert call["tuned_model_display_name"] == "2024" and call["description"] == "7"
    assert call["labels"]["team"] == "42"
    # and the real request type accepts what is sent
    types.CreateTuningJobConfig(tuned_model_display_name=call["tuned_model_display_name"],
                                description=call["description"], labels=call["labels"])


def test_answer_comparison():
    assert normalize("  Billing.\n") == "billing"
    assert is_correct("Billing.", "billing", "exact_match")
    assert not is_correct("billing issue", "billing", "exact_match")
    assert is_correct("It is a Billing issue", "billing", "contains")


def _response(text: str) -> types.GenerateContentResponse:
    return types.GenerateContentResponse(
        candidates=[types.Candidate(content=types.Content(role="model", parts=[types.Part(text=text)]))]
    )


def _smoke(answers: dict[str, list[str]], prompt_texts: list[str] | None = None, **kwargs):
    """Run the smoke test; each model answers the i-th prompt (by its text) with ``answers[model][i]``."""
    texts = prompt_texts if prompt_texts is not None else [
        item if isinstance(item, str) else item["prompt"] for item in kwargs["prompts"]
    ]
    by_prompt = {model: dict(zip(texts, replies)) for model, replies in answers.items()}
    operator = SmokeTestOperator(task_id="smoke", model="endpoints/1", **kwargs)
    context = task_context()

    def generate(model, contents, **_):
        return _response(by_prompt[model][contents[-1]["parts"][0]["text"]])

    with mock.patch.object(SmokeTestOperator, "hook") as hook:
        hook.generate_content.side_effect = generate
        return operator.execute(context), hook


PROMPTS = [{"prompt": "a", "expected": "billing"}, {"prompt": "b", "expected": "shipping"}, "c"]


def test_smoke_test_scores_tuned_and_base_models():
    results, hook = _smoke(
        {"endpoints/1": ["billing", "Shipping.", "free text"], "base": ["no", "shipping", "x"]},
        prompts=PROMPTS,
        base_model="base",
        temperature="0.2",
        top_p="0.9",
        top_k="5",
        max_output_tokens="8",
        min_score="0.9",
        require_better_than_base="True",
    )
    assert results["tuned"] | {"seconds_per_prompt": 0} == {
        "answered": 3, "empty_answers": 0, "scored": 2, "correct": 2, "score": 1.0, "seconds_per_prompt": 0
    }
    assert results["base"]["score"] == 0.5
    assert hook.generate_content.call_args.kwargs["generation_config"] == {
        "temperature": 0.2, "topP": 0.9, "topK": 5, "maxOutputTokens": 8
    }


@pytest.mark.parametrize(
    ("answers", "kwargs", "failure"),
    [
        (["billing", "", "x"], {}, "1 empty answer"),
        (["billing", "returns", "x"], {"min_score": 0.75}, "score 0.500 is below the threshold 0.750"),
        (["billing", "returns", "x"], {"require_better_than_base": True}, "below the base model's 1.000"),
    ],
)
def test_smoke_test_failures_are_final(answers, kwargs, failure):
    with pytest.raises(AirflowFailException, match=failure):
        base_answers = ["billing", "shipping", "x"]
        _smoke({"endpoints/1": answers, "base": base_answers}, prompts=PROMPTS, base_model="base", **kwargs)


def test_every_answer_goes_to_the_results_file_and_xcom_keeps_the_scores(tmp_path):
    """Written before the gate decides, so a failed gate still leaves every answer to read."""
    results_file = tmp_path / "archive" / "smoke_test.json"
    with pytest.raises(AirflowFailException, match="below the base model's"):
        _smoke({"endpoints/1": ["billing", "returns", "x"], "base": ["billing", "shipping", "x"]},
               prompts=PROMPTS, base_model="base", require_better_than_base=True, results_uri=str(results_file))
    written = json.loads(results_file.read_text())
    assert [e["tuned_answer"] for e in written["examples"]] == ["billing", "returns", "x"]
    assert [e["base_answer"] for e in written["examples"]] == ["billing", "shipping", "x"]
    results, _ = _smoke({"endpoints/1": ["billing", "shipping", "x"]}, prompts=PROMPTS,
                        compare_with_base_model=False, results_uri=str(results_file))
    assert "examples" not in results and results["results_uri"] == str(results_file)
    assert len(json.dumps(results)) < 1000


def test_prompts_go_out_concurrently():
    """Four calls must be in flight together to pass the barrier: one at a time would break it."""
    barrier = threading.Barrier(4, timeout=60)
    texts = [f"q{i}" for i in range(8)]
    operator = SmokeTestOperator(task_id="smoke", model="endpoints/1", prompts=texts, concurrency=4,
                                 compare_with_base_model=False)
    with mock.patch.object(SmokeTestOperator, "hook") as hook:
        hook.generate_content.side_effect = lambda **_: (barrier.wait(), _response("x"))[1]
        results = operator.execute(task_context())
    assert results["tuned"]["answered"] == 8


class _Log:
    """Records the operator's log lines, and flags the first progress line."""

    def __init__(self):
        self.lines: list[str] = []
        self.progress_seen = threading.Event()

    def info(self, message, *args):
        self.lines.append(message % args)
        if message.startswith("Smoke test after"):
            self.progress_seen.set()

    warning = info


def test_progress_is_logged_while_prompts_are_answered(monkeypatch):
    from gemini_tuning.operators import smoke_test

    monkeypatch.setattr(smoke_test, "PROGRESS_INTERVAL_SECONDS", 0.01)
    log = _Log()
    texts = [{"prompt": f"q{i}", "expected": "x"} for i in range(3)]
    operator = SmokeTestOperator(task_id="smoke", model="endpoints/1", base_model="base", prompts=texts,
                                 concurrency=1)

    def generate(model, contents, **_):
        if contents[-1]["parts"][0]["text"] == "q2":
            assert log.progress_seen.wait(60), "no progress line while a prompt was still out"
        return _response("x")

    with mock.patch.object(SmokeTestOperator, "log", log), mock.patch.object(SmokeTestOperator, "hook") as hook:
        hook.generate_content.side_effect = generate
        operator.execute(task_context())
    lines = [line for line in log.lines if line.startswith("Smoke test after")]
    assert len(lines) >= 2 and "tuned 3/3" not in lines[0]  # a line came while prompts were still out
    assert lines[-1].endswith("tuned 3/3 answered, 3 correct; base 3/3 answered, 3 correct")


def test_smoke_test_samples_the_validation_set(tmp_path):
    lines = [
        {"contents": [{"role": "user", "parts": [{"text": f"q{i}"}]}, {"role": "model", "parts": [{"text": f"a{i}"}]}]}
        for i in range(10)
    ]
    validation = tmp_path / "validation.jsonl"
    validation.write_text("\n".join(json.dumps(line) for line in lines))
    results, hook = _smoke(
        {"endpoints/1": [f"a{i}" for i in range(10)]},
        prompt_texts=[f"q{i}" for i in range(10)],
        validation_dataset_uri=str(validation),
        max_prompts=4,
        compare_with_base_model=False,
    )
    assert results["prompt_count"] == 4 and results["tuned"]["scored"] == 4 and results["tuned"]["correct"] == 4
    assert results["base"] is None


def test_smoke_test_needs_prompts():
    with pytest.raises(ValueError, match="No prompts"):
        _smoke({"endpoints/1": []}, prompt_texts=[], compare_with_base_model=False)


ROWS = [
    {"metric": "/train_total_loss", "step": 2, "value": 1.5, "wall_time": "2026-01-01T00:00:02Z"},
    {"metric": "/train_total_loss", "step": 1, "value": 2.0, "wall_time": "2026-01-01T00:00:01Z"},
    {"metric": "/eval_total_loss", "step": 2, "value": 1.8, "wall_time": "2026-01-01T00:00:02.5Z"},
    {
        "metric": "/train_fraction_of_correct_next_step_preds",
        "step": 2,
        "value": 0.4,
        "wall_time": "2026-01-01T00:00:02Z",
    },
]


def test_metrics_frame_is_tidy_and_sorted():
    frame = metrics_frame(ROWS)
    assert list(frame.columns) == ["metric", "step", "value", "wall_time"]
    assert list(frame[frame["metric"] == "/train_total_loss"]["step"]) == [1, 2]
    assert str(frame["wall_time"].dtype).startswith("datetime64") and str(frame["wall_time"].dt.tz) == "UTC"
    assert final_metrics(frame)["/train_total_loss"] == {"step": 2, "value": 1.5}
    assert metrics_frame([]).empty


def test_curves_png_even_without_eval_series():
    assert plot_curves(metrics_frame(ROWS), "job").startswith(b"\x89PNG")
    assert plot_curves(metrics_frame(ROWS[:2]), "job").startswith(b"\x89PNG")


def test_curves_mark_each_checkpoint_and_the_chosen_one(tmp_path):
    checkpoints = [{"checkpoint_id": "1", "epoch": 1, "step": 1, "endpoint": "e1"},
                   {"checkpoint_id": "2", "epoch": 2, "step": 2, "endpoint": "e2"}]
    plain = plot_curves(metrics_frame(ROWS), "job")
    marked = plot_curves(metrics_frame(ROWS), "job", checkpoints, chosen="1")
    assert marked.startswith(b"\x89PNG") and marked != plain
    assert marked != plot_curves(metrics_frame(ROWS), "job", checkpoints, chosen="2")
    (tmp_path / "curves.png").write_bytes(marked)


def _archive(tmp_path, **kwargs):
    job = types.TuningJob(
        name=JOB,
        state="JOB_STATE_SUCCEEDED",
        supervised_tuning_spec=types.SupervisedTuningSpec(
            hyper_parameters=types.SupervisedHyperParameters(epoch_count=2)
        ),
    )
    kwargs = {"archive_prefix": (tmp_path / "a" / "b").as_uri()} | kwargs
    operator = ArchiveTuningMetricsOperator(task_id="archive", tuning_job_name=JOB, **kwargs)
    with mock.patch.object(ArchiveTuningMetricsOperator, "hook") as hook:
        hook.get_tuning_job.return_value = job
        hook.read_metric_series.return_value = ROWS
        hook.list_checkpoints.side_effect = GenAITuningHook.list_checkpoints  # reads the job: no call
        return operator.execute(task_context())


def test_archive_writes_under_a_file_uri(tmp_path):
    smoke = tmp_path / "a" / "b" / "smoke_test.json"
    smoke.parent.mkdir(parents=True)
    smoke.write_text(json.dumps({"tuned": {"score": 1.0}, "examples": [{"prompt": "p"}]}))
    written = _archive(tmp_path, smoke_test_results_uri=smoke.as_uri())
    assert written["summary.json"] == (tmp_path / "a" / "b" / "summary.json").as_uri()
    summary = json.loads((tmp_path / "a" / "b" / "summary.json").read_text())
    assert summary["hyperparameters"] == {"epochCount": 2}
    assert summary["smoke_test"] == {"tuned": {"score": 1.0}}  # the answers stay in their own file
    assert summary["data_stats"] == {}
    assert len(pd.read_csv(tmp_path / "a" / "b" / "metrics.csv")) == 4


def test_the_archive_is_written_when_the_smoke_test_never_got_to_write(tmp_path):
    """A smoke test that failed on its first call (a 429) must not lose the curves of a good job."""
    written = _archive(tmp_path, smoke_test_results_uri=(tmp_path / "a" / "b" / "smoke_test.json").as_uri())
    assert sorted(written) == ["curves.png", "metrics.csv", "metrics.parquet", "summary.json"]
    assert json.loads((tmp_path / "a" / "b" / "summary.json").read_text())["smoke_test"] is None


def test_list_returns_short_summaries_and_is_bounded():
    from gemini_tuning.operators.tuning_job import ListTuningJobsOperator

    stats = types.TuningDataStats(
        supervised_tuning_data_stats=types.SupervisedTuningDataStats(tuning_dataset_example_count=500)
    )
    jobs = [types.TuningJob(name=f"j{i}", state="JOB_STATE_SUCCEEDED", base_model="m", tuning_data_stats=stats)
            for i in range(3)]
    with mock.patch.object(ListTuningJobsOperator, "hook") as hook:
        hook.list_tuning_jobs.return_value = jobs
        listed = ListTuningJobsOperator(task_id="list", max_jobs=3).execute(task_context())
    assert hook.list_tuning_jobs.call_args.kwargs["max_jobs"] == 3
    assert listed[0] == {"name": "j0", "state": "JOB_STATE_SUCCEEDED", "baseModel": "m"}  # no data stats
