"""The tuning pipeline on Airflow's distributed shape (PostgreSQL, Redis, Celery), and its faults.

One shape serves the module (starting it costs a minute or two); each test triggers its own run
and leaves every part running again when it ends. Waits are on events: task-instance states
through the REST API, job states through the local service.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.fixtures.airflow_distributed import DAG_ID, DistributedAirflow

pytestmark = pytest.mark.slow

SAMPLE = PROJECT_ROOT / "include" / "sample_data" / "classification"
LIVE = {"JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_CANCELLING"}
ENDED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
WORKERS = {"worker-a", "worker-b"}


def small_run(shape: DistributedAirflow, name: str, offset: int = 0) -> dict:
    """Conf for a short run on its own slice of the sample's training data (allowed to be small)."""
    files = {}
    for role, start, count in (("train", offset, 120), ("validation", 0, 24)):
        lines = (SAMPLE / f"{role}.jsonl").read_text().splitlines()[start:start + count]
        assert len(lines) == count, f"the sample's {role}.jsonl has too few lines for this slice"
        path = shape.root / f"{name}-{role}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        files[role] = str(path)
    return {"training_dataset": files["train"], "validation_dataset": files["validation"],
            "allow_small_dataset": True, "epoch_count": 1, "smoke_test_count": 3, "max_output_tokens": 4,
            "require_better_than_base": False, "tuned_model_display_name": name}


@contextmanager
def service_busy(shape: DistributedAirflow):
    """A job of the test's own takes the service's only training slot: the run's job queues behind it
    until the block ends (its job is cancelled), so the faults land while the run's job is in flight."""
    rows = (SAMPLE / "train.jsonl").read_text().splitlines()[:200]
    path = shape.root / "blocker-train.jsonl"
    path.write_text("\n".join(rows) + "\n")
    with shape.vertex() as vertex:
        job = vertex.post("/v1/projects/local-project/locations/us-central1/tuningJobs", json={
            "baseModel": "gemini-2.0-flash-001", "labels": {"purpose": "blocker"},
            "supervisedTuningSpec": {"trainingDatasetUri": path.as_uri(), "hyperParameters": {"epochCount": 100}},
        }).json()
    shape.wait_for_job(job["name"], {"JOB_STATE_RUNNING"})
    try:
        yield job
    finally:
        with shape.vertex() as vertex:
            vertex.post(f"/v1/{job['name']}:cancel")
        shape.wait_for_job(job["name"], ENDED)


def deferred_run(shape: DistributedAirflow, name: str) -> tuple[str, dict]:
    """Trigger a run and wait until its tuning job is queued on the service and its create deferred
    (holding the job's pool slot until the job ends)."""
    run_id = shape.trigger(small_run(shape, name))
    shape.wait_for_task(run_id, "create_tuning_job[0]", {"deferred"})
    [job] = shape.jobs_of_run(run_id)
    assert job["state"] in {"JOB_STATE_QUEUED", "JOB_STATE_PENDING"}, job
    return run_id, job


def assert_succeeded_with_one_job(shape: DistributedAirflow, run_id: str, timeout: float = 600) -> dict:
    run = shape.wait_for_run(run_id, timeout=timeout)
    assert run["state"] == "success", f"{run['task_states']}; logs in {shape.root}/logs and {shape.root}/airflow/logs"
    return the_one_succeeded_job(shape, run_id)


def the_one_succeeded_job(shape: DistributedAirflow, run_id: str) -> dict:
    [job] = shape.jobs_of_run(run_id)
    assert job["state"] == "JOB_STATE_SUCCEEDED", job
    return job


def task_log(shape: DistributedAirflow, run_id: str, task_id: str, map_index: int, attempt: int) -> str:
    folder = shape.root / "airflow" / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        folder /= f"map_index={map_index}"
    path = folder / f"attempt={attempt}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_a_worker_killed_while_creating_the_job_leaves_one_job_that_the_retry_adopts(airflow_distributed):
    shape = airflow_distributed
    shape.gate.hold_next_create()
    run_id = shape.trigger(small_run(shape, "worker-kill"))
    assert shape.gate.held.wait(timeout=300), f"no job was created; logs in {shape.root}/logs"
    # The job exists on the service; the worker that asked for it dies before it hears the answer.
    [first] = shape.tries(run_id, "create_tuning_job", 0)
    victim = first["hostname"]
    assert victim in WORKERS and first["state"] == "running", first
    shape.kill(victim)
    shape.gate.release.set()

    retried = shape.wait_for_task(run_id, "create_tuning_job[0]", {"success", "failed"}, timeout=300)
    shape.script("start", victim)
    assert retried["state"] == "success", retried
    [job] = shape.jobs_of_run(run_id)
    assert job["name"] == shape.gate.held_job["name"]
    tries = shape.tries(run_id, "create_tuning_job", 0)
    assert [t["hostname"] for t in tries] == [victim, *(WORKERS - {victim})], tries
    assert f"Reusing tuning job {job['name']}" in task_log(shape, run_id, "create_tuning_job", 0, 2)
    assert_succeeded_with_one_job(shape, run_id)


def test_the_triggerer_restarted_while_the_wait_is_deferred_resumes_it(airflow_distributed):
    shape = airflow_distributed
    with service_busy(shape):
        run_id, job = deferred_run(shape, "triggerer-restart")
        shape.script("stop", "triggerer")
        shape.script("start", "triggerer")
        # A restart is not a kill: the trigger did not cancel the job.
        assert shape.wait_for_job(job["name"], LIVE)["state"] in {"JOB_STATE_QUEUED", "JOB_STATE_PENDING"}
        assert shape.task_instances(run_id)["create_tuning_job[0]"]["state"] == "deferred"
    assert_succeeded_with_one_job(shape, run_id)
    [create] = shape.tries(run_id, "create_tuning_job", 0)
    assert create["try_number"] == 1 and create["state"] == "success", create


def test_the_scheduler_killed_mid_run_and_restarted_finishes_the_run(airflow_distributed):
    shape = airflow_distributed
    with service_busy(shape):
        run_id, _ = deferred_run(shape, "scheduler-kill")
        shape.kill("scheduler")
    # The job trains and ends while no scheduler runs; the new one picks the run up.
    shape.script("start", "scheduler")
    assert_succeeded_with_one_job(shape, run_id)


def test_postgres_restarted_mid_run_the_run_finishes_and_leaves_no_job_unowned(airflow_distributed):
    shape = airflow_distributed
    with service_busy(shape):
        run_id, _ = deferred_run(shape, "postgres-restart")
        shape.script("stop", "postgres")
        shape.script("start", "postgres")
    # The scheduler, dag-processor and triggerer may exit on the lost connection (their loops do not
    # ride out a database restart); the script restarts them by themselves, as the compose file's
    # `restart: always` does. Nothing is started again here.
    run = shape.wait_for_run(run_id)
    jobs = shape.jobs_of_run(run_id)
    # Whatever the outcome, no job of the run is left in flight, and a failure says which task.
    assert jobs and all(job["state"] in ENDED for job in jobs), jobs
    assert run["state"] == "success", f"the run failed on the restart: {run['task_states']}"
    assert [job["state"] for job in jobs] == ["JOB_STATE_SUCCEEDED"]
    assert shape.script("status").returncode == 0, shape.script("status").stdout  # every part up again
    restarted = [part for part in ("scheduler", "dag-processor", "triggerer")
                 if "(restart: always)" in shape.log(part, lines=100_000)]
    print(f"\nrestarted by the script after the database restart: {restarted or 'none'}")


def test_two_runs_at_once_on_two_datasets_each_tune_their_own_job(airflow_distributed):
    shape = airflow_distributed
    confs = [small_run(shape, "dataset-one", offset=0), small_run(shape, "dataset-two", offset=200)]
    run_ids = [shape.trigger(conf) for conf in confs]
    runs = [shape.wait_for_run(run_id, timeout=900) for run_id in run_ids]
    # Both runs publish to the one tuned-model Asset. When one run's challenge came before the
    # other's publish, its own publish finds a current model it was not compared with and fails by
    # design ("run again to challenge it"); all the rest of that run must have succeeded.
    for run_id, run in zip(run_ids, runs):
        if run["state"] != "success":
            unsucceeded = {task: state for task, state in run["task_states"].items()
                           if state not in ("success", "skipped")}
            assert unsucceeded == {"publish_tuned_model": "failed", "outcome": "upstream_failed"}, (
                f"{run['task_states']}; logs in {shape.root}/logs and {shape.root}/airflow/logs")
            publish_log = task_log(shape, run_id, "publish_tuned_model", -1, 1)
            assert "the current model changed while this run ran" in publish_log
            print(f"\n{run_id} lost the race to publish: its publish failed, as designed")
    assert any(run["state"] == "success" for run in runs), [run["task_states"] for run in runs]
    jobs = [the_one_succeeded_job(shape, run_id) for run_id in run_ids]
    assert jobs[0]["name"] != jobs[1]["name"]
    uploaded = [json.loads(_xcom(shape, run_id, "upload_dataset"))["training_dataset_uri"] for run_id in run_ids]
    assert uploaded[0] != uploaded[1]
    assert [job["supervisedTuningSpec"]["trainingDatasetUri"] for job in jobs] == uploaded
    # The runs ran at once, and the pool's one slot kept their jobs apart: the second job was not
    # even created before the first ended (the service alone would have queued it, created).
    pool = shape.pool()
    assert pool["slots"] == 1 and pool["include_deferred"], pool
    first, second = sorted(jobs, key=lambda job: _time(job["createTime"]))
    assert _time(first["endTime"]) <= _time(second["createTime"]), (first, second)
    assert max(_time(run["start_date"]) for run in runs) < min(_time(run["end_date"]) for run in runs), runs
    # The tasks of the two runs spread over both workers.
    hosts = {ti["hostname"] for run_id in run_ids for ti in shape.task_instances(run_id).values() if ti["hostname"]}
    assert hosts == WORKERS, hosts
    summaries = sorted(Path(p) for p in shape.archive.glob(f"{DAG_ID}/*/summary.json"))
    assert {json.loads(p.read_text())["job"]["name"] for p in summaries} >= {job["name"] for job in jobs}


def _time(rfc3339: str) -> datetime:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))


def _xcom(shape: DistributedAirflow, run_id: str, task_id: str) -> str:
    with shape.client() as client:
        value = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
                           params={"deserialize": True}).json()["value"]
    return value if isinstance(value, str) else json.dumps(value)
