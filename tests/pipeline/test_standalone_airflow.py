"""The tuning pipeline under a real Airflow: scheduler, dag-processor, triggerer and api-server.

Triggered through the REST API with conf, as the UI's trigger form does (retraining by Asset
events is in test_retraining.py, on the same instance). The real triggerer has plugins/ but not
dags/ on its path, so a trigger it cannot import fails these tests where `airflow dags test`
would pass.
"""

from __future__ import annotations

import time

import pytest

from tests.pipeline.test_pipeline_dag import SMALL_RUN

pytestmark = pytest.mark.slow

DAG_ID = "gemini_supervised_tuning"


@pytest.fixture(scope="module")
def airflow(standalone_pipeline):
    return standalone_pipeline


def test_rest_triggered_run_succeeds_with_the_deferred_sensor_in_the_triggerer(airflow):
    run_id = airflow.trigger(DAG_ID, {**SMALL_RUN, "tuned_model_display_name": "standalone-run"})
    run = airflow.wait_for_run(DAG_ID, run_id, timeout=600)
    log_hint = f"see {airflow.home}/standalone.log and {airflow.home}/logs"
    assert run["state"] == "success", f"{run['task_states']}: {log_hint}"
    assert run["task_states"]["wait_for_tuning_job[0]"] == "success"
    assert run["task_states"]["not_enough_data"] == "skipped"
    assert run["task_states"]["publish_tuned_model"] == "success"
    with airflow.client() as client:
        events = client.get("/assets/events", params={"source_dag_id": DAG_ID}).json()["asset_events"]
    [event] = [e for e in events if e["source_run_id"] == run_id]
    assert event["extra"]["endpoint"].startswith("projects/")
    assert "/eval_total_loss" in event["extra"]["final_metrics"]


def _task_state(client, run_id: str, task_id: str, map_index: int) -> str | None:
    response = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}")
    return response.json().get("state") if response.status_code == 200 else None


def _created_job(client, run_id: str, map_index: int) -> str:
    return client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/create_tuning_job/xcomEntries/tuning_job_name",
                      params={"map_index": map_index, "deserialize": True}).json()["value"]


def _wait_until_polled_in_a_trigger(airflow, client, run_id: str, map_index: int) -> None:
    """The trigger's own log shows its first poll: from then on it runs in the triggerer, so a kill
    reaches its on_kill (a task marked failed before the triggerer picked it up has no trigger)."""
    logs = airflow.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=create_tuning_job"
    deadline = time.monotonic() + 600
    while not any("JOB_STATE_" in log.read_text(errors="replace")
                  for log in logs.glob(f"map_index={map_index}/*.trigger.*.log")):
        assert time.monotonic() < deadline, f"create_tuning_job[{map_index}] never polled in a trigger: see {airflow.home}"
        time.sleep(3)
    assert _task_state(client, run_id, "create_tuning_job", map_index) == "deferred"


def test_killing_a_mapped_create_and_marking_the_run_failed_cancel_the_jobs(airflow, local_vertex):
    """Under the real triggerer: a user marking a mapped create failed while it holds its job (deferred)
    cancels the job through the trigger's on_kill and frees the pool's slot for the next member;
    marking the whole run failed (no failure callback runs) cancels that one."""
    conf = {**SMALL_RUN, "epoch_count": 60, "learning_rate_multiplier_sweep": [1.0, 2.0],  # two long jobs
            "tuned_model_display_name": "kill-test"}
    run_id = airflow.trigger(DAG_ID, conf)
    with airflow.client() as client:
        _wait_until_polled_in_a_trigger(airflow, client, run_id, 0)
        first = _created_job(client, run_id, 0)
        client.patch(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/create_tuning_job/0",
                     json={"new_state": "failed"}).raise_for_status()
        cancelled = local_vertex.wait_for_state(first, {"JOB_STATE_CANCELLED"}, timeout_s=120)
        assert cancelled["state"] == "JOB_STATE_CANCELLED"
        _wait_until_polled_in_a_trigger(airflow, client, run_id, 1)  # the slot went to the other member
        second = _created_job(client, run_id, 1)
        with local_vertex.http() as http:  # which is left alone
            assert http.get(f"/v1/{second}").json()["state"] != "JOB_STATE_CANCELLED"
        client.patch(f"/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"}).raise_for_status()
        assert local_vertex.wait_for_state(second, {"JOB_STATE_CANCELLED"}, timeout_s=120)["state"] == (
            "JOB_STATE_CANCELLED")
    logs = "\n".join(path.read_text(errors="replace") for path in airflow.home.rglob("*.log"))
    assert "Could not read the state" not in logs  # the old lookup failed on every mapped kill
