"""Worker time a tuning job's wait costs: TuningJobSensor deferred vs polling in a worker slot.

The baseline is what Google's GenAISupervisedFineTuningTrainOperator does (a worker polls until
the job ends: here the same sensor in poke mode); ours hands the wait to the triggerer. Both wait
for an identical job on the local service (tiny model); the figure is the worker-seconds each
holds, and their ratio.

    python tests/benchmarks/bench_tuning_wait.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each job (longer jobs: larger ratio)")
    args = parser.parse_args()

    from airflow.sdk.exceptions import TaskDeferred
    from gemini_tuning.operators.tuning_job import CreateTuningJobOperator
    from gemini_tuning.sensors.tuning_job import TuningJobSensor
    from include.tuning_engine.tiny import build_tiny_model
    from tests.fixtures.local_vertex import LocalVertexService
    from tests.gemini_tuning.helpers import sample_lines, task_context

    with tempfile.TemporaryDirectory() as tmp:
        service = LocalVertexService(Path(tmp) / "data", build_tiny_model(Path(tmp) / "tiny")).start()
        try:
            os.environ["AIRFLOW_CONN_GEMINI_TUNING_DEFAULT"] = json.dumps(
                {
                    "conn_type": "google_cloud_platform",
                    "password": service.token,
                    "extra": {"project": service.project, "location": service.location, "base_url": service.base_url},
                }
            )
            rows = [json.loads(line) for line in sample_lines("train.jsonl", 32)]
            train = service.write_dataset("train.jsonl", rows)

            def new_job() -> str:
                create = CreateTuningJobOperator(
                    task_id="create", base_model="gemini-2.0-flash-001", training_dataset_uri=train,
                    epoch_count=args.epochs,
                )
                return create.execute(task_context())["name"]

            def wait_polling(job: str) -> None:
                TuningJobSensor(task_id="w", job_name=job, deferrable=False, poke_interval=1).execute(task_context())

            wait_polling(new_job())  # warm-up: the first job pays the service's one-off start-up costs

            # Baseline: a worker polls until the job ends (poke mode, 1 s interval).
            job = new_job()
            started = time.monotonic()
            wait_polling(job)
            polling_worker_s = time.monotonic() - started

            # Ours: the worker defers; the trigger waits; a second short worker run resumes.
            job = new_job()
            sensor = TuningJobSensor(task_id="w", job_name=job, poll_interval=1, max_poll_interval=1)
            started = time.monotonic()
            try:
                sensor.execute(task_context())
                raise SystemExit("the sensor did not defer")
            except TaskDeferred as deferred:
                worker_s = time.monotonic() - started
                trigger = deferred.trigger

            async def first_event():
                async for event in trigger.run():
                    return event.payload

            wait_started = time.monotonic()
            event = asyncio.run(first_event())
            triggerer_s = time.monotonic() - wait_started
            started = time.monotonic()
            sensor.execute_complete(task_context(), event)
            worker_s += time.monotonic() - started
        finally:
            service.stop()

    print(f"job: {args.epochs} epoch(s) of 32 examples on the tiny model, local service, {os.cpu_count()} CPUs")
    print(f"poke mode (baseline, like Google's operator): worker held {polling_worker_s:7.2f} s")
    print(f"deferred (TuningJobSensor default):           worker held {worker_s:7.2f} s "
          f"(triggerer waited {triggerer_s:.2f} s, no slot)")
    print(f"ratio: {polling_worker_s / worker_s:.0f}x less worker time; slots held while the job trains: 0")


if __name__ == "__main__":
    main()
