"""
The measure: while a tuning job trains, the wait holds no worker slot.

A DAG of create + wait runs under Airflow's own test machinery (`dag.test()`, in a child process
with its own Airflow home, a copy of the project's migrated database and a dags folder holding
only this DAG). A spy on the worker side records each run of a task: the sensor's first run must
end DEFERRED, handing a DeferTask to the triggerer, while the job is still training; the job's
end is then seen by the trigger, and a second, short worker run resumes the sensor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from tests.gemini_tuning.helpers import copy_migrated_database

PROJECT_ROOT = Path(__file__).resolve().parents[2]

PROBE_DAG = '''
import json, time
import pendulum
from airflow.sdk import DAG
from gemini_tuning.operators.tuning_job import CreateTuningJobOperator
from gemini_tuning.sensors.tuning_job import TuningJobSensor

with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:
    create = CreateTuningJobOperator(
        task_id="create_tuning_job",
        base_model="gemini-2.0-flash-001",
        training_dataset_uri={train!r},
        validation_dataset_uri={validation!r},
        epoch_count=1,
    )
    wait = TuningJobSensor(
        task_id="wait_for_tuning_job",
        job_name="{{{{ ti.xcom_pull(task_ids='create_tuning_job', key='tuning_job_name') }}}}",
        poll_interval=0.5,
        max_poll_interval=1.0,
    )
    create >> wait

if __name__ == "__main__":
    from airflow.sdk.execution_time import supervisor

    run_in_worker = supervisor.run_task_in_process
    runs = []

    def recording_worker(ti, task):
        started = time.time()
        result = run_in_worker(ti, task)
        runs.append({{"task_id": ti.task_id, "state": result.ti.state.value, "message": type(result.msg).__name__,
                      "started": started, "ended": time.time()}})
        return result

    supervisor.run_task_in_process = recording_worker
    dag_run = dag.test()
    print("PROBE " + json.dumps({{"state": str(dag_run.state), "runs": runs}}))
'''


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


@pytest.mark.slow
def test_waiting_for_a_job_holds_no_worker_slot(tmp_path, datasets, tuning_connection):
    from gemini_tuning.hooks.tuning import GenAITuningHook

    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    copy_migrated_database(home / "airflow.db")
    probe = home / "dags" / "deferral_probe.py"
    dag_id = f"gemini_tuning_deferral_probe_{uuid.uuid4().hex[:8]}"
    probe.write_text(PROBE_DAG.format(dag_id=dag_id, train=datasets["train"], validation=datasets["validation"]))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")]),
    }
    completed = subprocess.run(
        [sys.executable, str(probe)], env=env, cwd=home, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("PROBE ")]
    assert lines, f"dag.test() did not finish:\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
    probe_result = json.loads(lines[-1].removeprefix("PROBE "))
    assert probe_result["state"] == "success", completed.stdout[-4000:]

    sensor_runs = [run for run in probe_result["runs"] if run["task_id"] == "wait_for_tuning_job"]
    assert [(run["state"], run["message"]) for run in sensor_runs] == [
        ("deferred", "DeferTask"),  # the worker process handed the wait to the triggerer and ended
        ("success", "SucceedTask"),  # resumed by the trigger's event
    ]
    [job] = GenAITuningHook().list_tuning_jobs(filter=f'labels.airflow_dag_id="{dag_id}"')
    job_started, job_ended = epoch(job.start_time.isoformat()), epoch(job.end_time.isoformat())
    deferred_at, resumed_at = sensor_runs[0]["ended"], sensor_runs[1]["started"]
    assert deferred_at < job_ended < resumed_at, "the slot was given back before the job ended, and taken after"

    training_seconds = job_ended - max(job_started, deferred_at)
    worker_seconds = sum(run["ended"] - run["started"] for run in sensor_runs)
    print(
        f"\nwait for a {job_ended - job_started:.1f} s tuning job: worker slots held while it trained: 0 "
        f"(deferred {training_seconds:.1f} s); sensor's worker time in all: {worker_seconds:.2f} s"
    )
