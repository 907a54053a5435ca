"""docker-compose.yaml is checked offline: no Docker engine runs here, but the compose client
validates the file against its schema without one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                    "airflow-triggerer", "airflow-init")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_has_the_official_services_and_the_local_vertex_backend(compose):
    assert set(compose["services"]) >= {"postgres", "redis", "local-vertex", *AIRFLOW_SERVICES}


def test_airflow_services_mount_the_project_folders(compose):
    for name in AIRFLOW_SERVICES:
        targets = {volume.rsplit(":", 1)[1] for volume in compose["services"][name]["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= targets, name


def test_extra_airflow_requirements_match_the_lock(compose):
    setting = compose["x-airflow-common"]["environment"]["_PIP_ADDITIONAL_REQUIREMENTS"]
    pins = re.fullmatch(r"\$\{_PIP_ADDITIONAL_REQUIREMENTS:-(.*)\}", setting).group(1).split()
    assert pins, setting
    lock = (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
    for pin in pins:
        assert pin in lock, f"{pin} differs from requirements.txt"


def test_compose_schema_check():
    client = shutil.which("docker-compose")
    if client is None:
        pytest.skip("docker-compose is not installed (scripts/test.sh installs it where it can)")
    env = {**os.environ, "LOCAL_VERTEX_TOKEN": "schema-check"}
    result = subprocess.run([client, "-f", str(COMPOSE_FILE), "config", "--quiet"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_a_token():
    client = shutil.which("docker-compose")
    if client is None:
        pytest.skip("docker-compose is not installed")
    env = {k: v for k, v in os.environ.items() if k != "LOCAL_VERTEX_TOKEN"}
    result = subprocess.run([client, "-f", str(COMPOSE_FILE), "config", "--quiet"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode != 0 and "LOCAL_VERTEX_TOKEN" in result.stderr
