"""Wall time of the tuning pipeline on Airflow's distributed shape vs a single-process `airflow dags test`.

Both run the same conf on the same local Vertex service and model: the shape (PostgreSQL, Redis,
api-server, scheduler, dag-processor, triggerer, two Celery workers, from
scripts/airflow-distributed.sh) through the REST API, then `airflow dags test` on SQLite, as the
main job runs it. Prints each run's time, its time in tasks and in scheduling, and the ratio.

    python tests/benchmarks/bench_distributed.py [--model tiny|smollm2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")]

SMALL_RUN = {"smoke_test_count": 5, "max_output_tokens": 4, "require_better_than_base": False}


def seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny",
                        help="the test suite's tiny model (a minute or two a run) or the bundled SmolLM2 (minutes)")
    args = parser.parse_args()

    from include.tuning_engine.tiny import build_tiny_model
    from tests.fixtures.airflow_distributed import distributed_shape, missing_packages
    from tests.pipeline.conftest import PipelineEnv, airflow_dags_test

    if missing := missing_packages():
        sys.exit(f"install Debian's {' and '.join(missing)} first")
    conf = SMALL_RUN if args.model == "tiny" else {}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny") if args.model == "tiny" else None
        with distributed_shape(model) as shape:
            run_id = shape.trigger(conf)
            run = shape.wait_for_run(run_id, timeout=3600)
            assert run["state"] == "success", run["task_states"]
            tis = shape.task_instances(run_id).values()
            shape_wall = seconds(run["start_date"], run["end_date"])
            shape_tasks = sum(seconds(ti["start_date"], ti["end_date"]) for ti in tis if ti["state"] == "success")
            hosts = sorted({ti["hostname"] for ti in tis if ti["hostname"]})

            env = {k: v for k, v in shape.env.items() if k.startswith(("AIRFLOW_CONN", "AIRFLOW_VAR"))}
            env["AIRFLOW_VAR_GEMINI_TUNING_TOKENIZER"] = str(model) if model else subprocess.run(
                [sys.executable, "-c", "from pathlib import Path; from include.tuning_engine.models import "
                 f"ensure_smollm2; print(ensure_smollm2(Path('{shape.root}/local_vertex/models')))"],
                capture_output=True, text=True, check=True, cwd=PROJECT_ROOT).stdout.strip()
            env["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{shape.ports['LOCAL_VERTEX_STORAGE_PORT']}"
            env["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
            pipeline = PipelineEnv(env=env, archive_root=shape.archive, airflow_home=Path(tmp) / "dags-test-home")
            pipeline.airflow_home.mkdir()
            # Airflow's parts of the shape stop (the service stays): the baseline has the machine to itself.
            shape.script("stop", "worker-b", "worker-a", "triggerer", "dag-processor", "scheduler", "api-server")
            home = pipeline.airflow_home
            subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], check=True,
                           capture_output=True, env={**os.environ, "AIRFLOW_HOME": str(home),
                                                     "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"})
            started = time.monotonic()
            result = airflow_dags_test(pipeline, conf, timeout=3600)
            single_wall = time.monotonic() - started
            assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    print(f"model {args.model}, conf {json.dumps(conf)}")
    print(f"distributed shape   {shape_wall:7.1f} s  (tasks {shape_tasks:.1f} s, the rest scheduling and hand-offs; "
          f"workers {', '.join(hosts)})")
    print(f"airflow dags test   {single_wall:7.1f} s  (one process, SQLite)")
    print(f"ratio               {shape_wall / single_wall:7.2f}x the single-process time")


if __name__ == "__main__":
    main()
