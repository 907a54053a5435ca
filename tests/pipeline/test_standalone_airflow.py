"""The tuning pipeline under a real Airflow: scheduler, dag-processor, triggerer and api-server.

Triggered through the REST API with conf, as the UI's trigger form does. The real triggerer has
plugins/ but not dags/ on its path, so a trigger it cannot import fails this test where
`airflow dags test` would pass.
"""

from __future__ import annotations

import pytest

from tests.pipeline.test_pipeline_dag import SMALL_RUN

pytestmark = pytest.mark.slow

DAG_ID = "gemini_supervised_tuning"


def test_rest_triggered_run_succeeds_with_the_deferred_sensor_in_the_triggerer(pipeline_env, airflow_standalone_factory):
    airflow = airflow_standalone_factory(pipeline_env.env)
    airflow.wait_for_dag(DAG_ID)
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
