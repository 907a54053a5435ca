"""The tuning-jobs pool under a real Airflow (scheduler, triggerer): never more live jobs than slots.

The service here trains two jobs at once, so only the pool (one slot, its default) can keep them
apart: two runs at once, one of them a learning-rate sweep (a job per setting), must never have two jobs training together
(read from the jobs' own times on the service), and all of them must finish.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from gemini_tuning.pool import DEFAULT_SLOTS, TUNING_JOBS_POOL
from tests.fixtures.local_vertex import LocalVertexService, jobs_of_run
from tests.pipeline.conftest import pipeline_settings
from tests.pipeline.test_pipeline_dag import SMALL_RUN

pytestmark = pytest.mark.slow

DAG_ID = "gemini_supervised_tuning"


@pytest.fixture(scope="module")
def two_slot_service(tmp_path_factory, local_vertex_tiny_model):
    service = LocalVertexService(tmp_path_factory.mktemp("pool-service") / "data", local_vertex_tiny_model,
                                 max_concurrent_jobs=2)
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def airflow(two_slot_service, local_vertex_tiny_model, tmp_path_factory, airflow_standalone_factory):
    env = pipeline_settings(two_slot_service, local_vertex_tiny_model, tmp_path_factory.mktemp("pool-archive"))
    airflow = airflow_standalone_factory(env)
    airflow.wait_for_dag(DAG_ID)
    return airflow


def _time(rfc3339: str) -> datetime:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))


def test_one_slot_keeps_the_jobs_of_two_runs_and_a_sweep_apart(airflow, two_slot_service):
    with airflow.client() as client:
        deadline = time.monotonic() + 120
        while (pool := client.get(f"/pools/{TUNING_JOBS_POOL}")).status_code != 200:  # made when the scheduler started
            assert time.monotonic() < deadline, f"no pool {TUNING_JOBS_POOL}: see {airflow.home}/standalone.log"
            time.sleep(1)
    assert pool.json()["slots"] == DEFAULT_SLOTS == 1 and pool.json()["include_deferred"] is True

    sweep = airflow.trigger(DAG_ID, {**SMALL_RUN, "epoch_count": 1, "learning_rate_multiplier_sweep": [1.0, 2.0],
                                     "tuned_model_display_name": "pool-sweep"})
    single = airflow.trigger(DAG_ID, {**SMALL_RUN, "epoch_count": 1, "tuned_model_display_name": "pool-single"})
    runs = {run_id: airflow.wait_for_run(DAG_ID, run_id, timeout=900) for run_id in (sweep, single)}
    log_hint = f"see {airflow.home}/standalone.log and {airflow.home}/logs"
    for run in runs.values():
        assert run["state"] == "success", f"{run['task_states']}: {log_hint}"

    with two_slot_service.http() as http:
        jobs = {run_id: jobs_of_run(http, DAG_ID, run_id) for run_id in runs}
    assert [len(jobs[sweep]), len(jobs[single])] == [2, 1], jobs
    every = sorted((job for run_jobs in jobs.values() for job in run_jobs), key=lambda job: job["startTime"])
    assert all(job["state"] == "JOB_STATE_SUCCEEDED" for job in every), every
    for earlier, later in zip(every, every[1:]):
        # The next job was created only once the slot's holder saw its job end.
        assert _time(earlier["endTime"]) <= _time(later["createTime"]), (earlier, later)
    # The runs themselves ran at once: the pool, not the DAG's max_active_runs, kept their jobs apart.
    started = [_time(run["start_date"]) for run in runs.values()]
    ended = [_time(run["end_date"]) for run in runs.values()]
    assert max(started) < min(ended), runs
