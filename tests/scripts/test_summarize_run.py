"""The main job names the tasks that failed when a run archived nothing."""

from __future__ import annotations

import importlib.util

from tests.conftest import PROJECT_ROOT

spec = importlib.util.spec_from_file_location("summarize_run", PROJECT_ROOT / "scripts" / "summarize_run.py")
summarize_run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summarize_run)


def test_failed_tasks_are_read_from_the_dags_test_log(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(
        "... Task instance state updated new_state=success rows_affected=1\n"
        "... [DAG TEST] end task task_id=validate_dataset map_index=-1\n"
        "... Task failed with exception\n"
        "... Task instance state updated new_state=failed rows_affected=1\n"
        "... [DAG TEST] end task task_id=upload_dataset map_index=-1\n"
        "... [DAG TEST] end task task_id=upload_dataset map_index=-1\n"
    )
    assert summarize_run.failed_tasks(log) == ["upload_dataset"]
    assert summarize_run.failed_tasks(tmp_path / "missing.log") == []


def test_the_summary_shows_the_estimate_and_answers_from_the_smoke_test_file(tmp_path, capsys):
    import json

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({
        "job": {"name": "projects/p/locations/l/tuningJobs/1", "state": "JOB_STATE_SUCCEEDED"},
        "final_metrics": {}, "hyperparameters": {"epochCount": 2},
        "smoke_test": {"tuned": {"score": 1.0, "correct": 1, "scored": 1}, "base": None},
        "run_summary": {"recommendation": {"reasons": [], "estimate": {
            "billable_tokens": 2_000_000, "cost_usd": 10.0, "seconds": None, "price_table_as_of": "2025-09-01"}}},
    }))
    (run / "smoke_test.json").write_text(json.dumps({"examples": [
        {"prompt": "Where is my parcel?", "expected": "shipping", "tuned_answer": "shipping", "base_answer": "?"}]}))
    summarize_run.print_summary(run / "summary.json", 60.0)
    out = capsys.readouterr().out
    assert "estimate         2,000,000 billable tokens, $10.00 (prices as of 2025-09-01)" in out
    assert "'Where is my parcel?'" in out and "tuned 'shipping'" in out


def test_the_summary_names_the_checkpoint_the_run_chose_and_why(tmp_path, capsys):
    import json

    (tmp_path / "summary.json").write_text(json.dumps({
        "job": {"name": "projects/p/locations/l/tuningJobs/1", "state": "JOB_STATE_SUCCEEDED"},
        "final_metrics": {}, "hyperparameters": {"epochCount": 3}, "smoke_test": None,
        "checkpoints": [{"checkpoint_id": str(i)} for i in (1, 2, 3)],
        "run_summary": {"champion": {"checkpoint_id": "2", "epoch": 2, "step": 130,
                                     "reason": "lowest validation loss at its step among 3 checkpoint(s)"}},
    }))
    summarize_run.print_summary(tmp_path / "summary.json", 60.0)
    assert ("checkpoint       2 of 3 (epoch 2, step 130), served on the main endpoint: lowest validation loss at "
            "its step among 3 checkpoint(s)") in capsys.readouterr().out
