"""The tuning pipeline end to end through `airflow dags test`, on the local service's tiny model."""

from __future__ import annotations

import re

import pytest

from tests.pipeline.conftest import airflow_dags_test

pytestmark = pytest.mark.slow

SMALL_RUN = {"smoke_test_count": 5, "max_output_tokens": 4, "require_better_than_base": False}


def test_pipeline_tunes_smoke_tests_archives_and_publishes(pipeline_env):
    result = airflow_dags_test(pipeline_env, SMALL_RUN)
    output = result.stdout + result.stderr
    (pipeline_env.airflow_home / "dags-test.log").write_text(output)
    assert result.returncode == 0, output[-4000:]
    [summary] = pipeline_env.summaries()
    assert summary["job"]["state"] == "JOB_STATE_SUCCEEDED"
    assert summary["hyperparameters"]["epochCount"] == "2" or summary["hyperparameters"]["epochCount"] == 2
    assert {"/train_total_loss", "/eval_total_loss"} <= set(summary["final_metrics"])
    assert summary["smoke_test"]["prompt_count"] == 5
    assert summary["run_summary"]["recommendation"]["epoch_counts"] == [2]
    assert summary["run_summary"]["dataset"]["training_dataset_uri"].startswith("gs://")
    archive = pipeline_env.archive_root.glob("gemini_supervised_tuning/*/")
    [folder] = list(archive)
    assert {"curves.png", "metrics.parquet", "metrics.csv", "summary.json"} <= {p.name for p in folder.iterdir()}
    assert (folder / "dataset_report" / "report.html").exists()


def test_too_few_examples_for_the_task_end_the_run_before_any_job(pipeline_env):
    """The chat sample has 80 examples where Google recommends 1000+: no job, a clear report."""
    conf = {**SMALL_RUN, "task_type": "chat", "training_dataset": "include/sample_data/chat/train.jsonl",
            "validation_dataset": None}
    result = airflow_dags_test(pipeline_env, conf)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Not enough data to tune" in output
    assert "only 80 training examples, below the 1000 recommended for chat" in output
    started = set(re.findall(r"\[DAG TEST\] starting task_id=(\w+)", output))
    assert "not_enough_data" in started and "create_tuning_job" not in started
