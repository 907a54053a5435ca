"""Run the tuning pipeline DAG for real, against the session's local Vertex service (tiny model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "gemini_supervised_tuning"
PRODUCER = Path(__file__).resolve().parent / "producer_dags" / "retraining_producer.py"


@dataclass
class PipelineEnv:
    env: dict[str, str]
    archive_root: Path
    airflow_home: Path

    def summaries(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.archive_root.glob(f"{DAG_ID}/*/summary.json"))]


def pipeline_settings(service, tokenizer: Path, archive: Path) -> dict[str, str]:
    """Airflow's connections and Variables for a pipeline on ``service`` (a LocalVertexService)."""
    connection = {
        "conn_type": "google_cloud_platform",
        "password": service.token,
        "extra": {"project": service.project, "location": service.location, "base_url": service.base_url},
    }
    return {
        "AIRFLOW_CONN_GEMINI_TUNING_DEFAULT": json.dumps(connection),
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(
            {"conn_type": "google_cloud_platform", "extra": {"project": service.project, "is_anonymous": True}}),
        "STORAGE_EMULATOR_HOST": service.storage_url,
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        "AIRFLOW_VAR_GEMINI_TUNING_ARCHIVE_URI": archive.as_uri(),
        "AIRFLOW_VAR_GEMINI_TUNING_TOKENIZER": str(tokenizer),
        "AIRFLOW_VAR_GEMINI_TUNING_BACKEND": "local",
    }


@pytest.fixture(scope="session")
def pipeline_env(local_vertex, local_vertex_tiny_model, tmp_path_factory) -> PipelineEnv:
    """Airflow settings that point the DAGs at the test service: connections, Variables, a fresh home."""
    home = tmp_path_factory.mktemp("pipeline_airflow_home")
    archive = tmp_path_factory.mktemp("pipeline_archive")
    env = pipeline_settings(local_vertex, local_vertex_tiny_model, archive)
    return PipelineEnv(env=env, archive_root=archive, airflow_home=home)


def airflow_dags_test(pipeline: PipelineEnv, conf: dict, timeout: float = 600, *,
                      python_path: Sequence[Path] = (), dag_id: str = DAG_ID) -> subprocess.CompletedProcess:
    """`airflow dags test` in its own Airflow home and database, as the main job runs it.

    ``python_path``: folders put before the project on PYTHONPATH (e.g. one with a sitecustomize.py).
    """
    env = {
        **os.environ,
        **pipeline.env,
        "AIRFLOW_HOME": str(pipeline.airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{pipeline.airflow_home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join([*map(str, python_path), str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")]),
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    if not (pipeline.airflow_home / "airflow.db").exists():
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return subprocess.run([airflow, "dags", "test", dag_id, "--conf", json.dumps(conf)], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def standalone_pipeline(pipeline_env, airflow_standalone_factory, tmp_path_factory):
    """One `airflow standalone` for every standalone test of the pipeline: the project's DAGs and a
    test producer of training data (links, so the DAGs still find the project from their files)."""
    dags = tmp_path_factory.mktemp("standalone_dags")
    for source in [*(PROJECT_ROOT / "dags").glob("*.py"), PRODUCER]:
        (dags / source.name).symlink_to(source)
    airflow = airflow_standalone_factory({**pipeline_env.env, "AIRFLOW__CORE__DAGS_FOLDER": str(dags)})
    airflow.wait_for_dag(DAG_ID)
    airflow.wait_for_dag(PRODUCER.stem)
    return airflow
