"""The tuning pipeline end to end through `airflow dags test`, on the local service's tiny model."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import PROJECT_ROOT
from tests.pipeline.conftest import airflow_dags_test

pytestmark = pytest.mark.slow

SAMPLE = PROJECT_ROOT / "include" / "sample_data" / "classification"
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
    answers = json.loads((folder / "smoke_test.json").read_text())["examples"]
    assert len(answers) == 5 and all("tuned_answer" in a and "base_answer" in a for a in answers)
    assert "examples" not in summary["smoke_test"]
    estimate = summary["run_summary"]["recommendation"]["estimate"]
    assert estimate["billable_tokens"] == 2 * estimate["training_tokens"] > 0 and estimate["seconds"] > 0
    assert re.search(r"Estimate: [\d,]+ billable tokens", output)


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


def test_epoch_sweep_is_one_job_and_publishes_its_checkpoint_with_the_lowest_validation_loss(pipeline_env, local_vertex):
    import sqlite3

    def job_names() -> set[str]:
        with local_vertex.http() as http:
            return {job["name"] for job in http.get(f"/v1/{local_vertex.parent}/tuningJobs",
                                                    params={"pageSize": 1000}).json().get("tuningJobs", [])}

    before = job_names()
    result = airflow_dags_test(pipeline_env, {**SMALL_RUN, "epoch_sweep": [2, 1, 3], "tuned_model_display_name": "sweep"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    [job_name] = job_names() - before  # one job for the whole sweep
    [summary] = [s for s in pipeline_env.summaries() if s["job"]["name"] == job_name]
    assert summary["run_summary"]["recommendation"]["epoch_sweep"] == [1, 2, 3]
    assert summary["hyperparameters"]["epochCount"] in ("3", 3)

    # What the service reports: the job's checkpoints and the validation loss at each one's step.
    with local_vertex.http() as http:
        job = http.get(f"/v1/{job_name}").json()
        points = http.get(f"/v1/{job['experiment']}/runs/train/timeSeries/eval_total_loss:read").json()
        model = http.get(f"/v1/{job['tunedModel']['model']}").json()
    loss_at = {int(p["step"]): p["scalar"]["value"] for p in points["timeSeriesData"]["values"]}
    checkpoints = job["tunedModel"]["checkpoints"]
    assert [c["epoch"] for c in checkpoints] == ["1", "2", "3"]
    best = min(checkpoints, key=lambda c: (loss_at[int(c["step"])], int(c["step"])))

    champion = summary["run_summary"]["champion"]
    assert (champion["checkpoint_id"], champion["endpoint"]) == (best["checkpointId"], best["endpoint"])
    assert champion["loss"] == pytest.approx(loss_at[int(best["step"])])
    assert model["defaultCheckpointId"] == best["checkpointId"]  # the main endpoint serves it now
    assert summary["chosen_checkpoint_id"] == best["checkpointId"] and len(summary["checkpoints"]) == 3
    with sqlite3.connect(pipeline_env.airflow_home / "airflow.db") as db:
        [extra] = db.execute("SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                             "WHERE a.name = 'gemini_tuned_model' ORDER BY e.id DESC LIMIT 1").fetchone()
    event = json.loads(extra)
    assert event["tuning_job"] == job_name and event["model"] == job["tunedModel"]["model"]
    assert (event["checkpoint_id"], event["endpoint"]) == (best["checkpointId"], best["endpoint"])


def test_admin_dag_lists_gets_and_cancels(pipeline_env, local_vertex):
    rows = [json.loads(line) for line in (SAMPLE / "train.jsonl").read_text().splitlines()[:16]]
    with local_vertex.http() as http:
        job = http.post(f"/v1/{local_vertex.parent}/tuningJobs", json={
            "baseModel": "gemini-2.0-flash-001",
            "supervisedTuningSpec": {"trainingDatasetUri": local_vertex.write_dataset("admin.jsonl", rows),
                                     "hyperParameters": {"epochCount": 1}},
            "labels": {"purpose": "admin-dag-test"},
        }).json()
    local_vertex.wait_for_state(job["name"], {"JOB_STATE_SUCCEEDED"})

    listed = airflow_dags_test(pipeline_env, {"action": "list", "filter": 'labels.purpose="admin-dag-test"'},
                               dag_id="gemini_tuning_admin")
    output = listed.stdout + listed.stderr
    assert listed.returncode == 0, output[-4000:]
    assert f"{job['name']}  JOB_STATE_SUCCEEDED" in output
    for action in ("get", "cancel"):  # cancelling an ended job leaves it as it is
        result = airflow_dags_test(pipeline_env, {"action": action, "job_name": job["name"].rsplit("/", 1)[-1]},
                                   dag_id="gemini_tuning_admin")
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    missing = airflow_dags_test(pipeline_env, {"action": "get", "job_name": ""}, dag_id="gemini_tuning_admin")
    assert missing.returncode != 0
    assert "the get action needs a job_name" in missing.stdout + missing.stderr
