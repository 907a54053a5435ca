"""docker-compose.yaml is checked offline: no Docker engine runs here, but the compose client
validates the file against its schema without one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from include.tuning_engine.models import SMOLLM2_FOLDER
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


# -- the compose file says what scripts/airflow-distributed.sh runs -----------------------------

SCRIPT = (PROJECT_ROOT / "scripts" / "airflow-distributed.sh").read_text()


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> source, for the service's volumes (a source may hold ``${VAR:-.}``)."""
    pairs = (re.fullmatch(r"(.+?):(/[^:]*)(?::ro|:rw)?", volume).groups() for volume in service["volumes"])
    return {target: source for source, target in pairs}


def test_the_token_reaches_the_service_by_environment_only(compose):
    service = compose["services"]["local-vertex"]
    assert "LOCAL_VERTEX_TOKEN" in service["environment"]
    assert "--token" not in " ".join(service["command"])
    assert "--token" not in SCRIPT


def test_the_service_data_root_is_the_project_as_in_the_script(compose):
    service = compose["services"]["local-vertex"]
    command = " ".join(service["command"])
    root = re.search(r"--data-root (\S+)", command).group(1)
    assert _mounts(service)[root] == "${AIRFLOW_PROJ_DIR:-.}"
    assert '--data-root "$PROJECT_ROOT"' in SCRIPT


def test_runs_are_archived_in_a_folder_every_worker_mounts(compose):
    env = compose["x-airflow-common"]["environment"]
    archive = env["AIRFLOW_VAR_GEMINI_TUNING_ARCHIVE_URI"].removeprefix("file://")
    assert _mounts(compose["services"]["airflow-worker"])[archive] == "${AIRFLOW_PROJ_DIR:-.}/.archive"
    assert "GEMINI_TUNING_ARCHIVE_URI:-file://$PROJECT_ROOT/.archive" in SCRIPT


def test_the_tokenizer_variable_names_the_model_the_service_converts(compose):
    env = compose["x-airflow-common"]["environment"]
    tokenizer = Path(env["AIRFLOW_VAR_GEMINI_TUNING_TOKENIZER"])
    mounts = _mounts(compose["services"]["airflow-worker"])
    [(mount, volume)] = [(m, v) for m, v in mounts.items() if tokenizer.is_relative_to(m)]
    assert volume == "local-vertex-data" and _mounts(compose["services"]["local-vertex"])["/data"] == volume
    models = Path("/data") / tokenizer.relative_to(mount).parent
    assert f"ensure_smollm2(Path('{models}'))" in " ".join(compose["services"]["local-vertex"]["command"])
    assert tokenizer.name == SMOLLM2_FOLDER
    assert "ensure_smollm2(Path('$LOCAL_VERTEX_DATA') / 'models')" in SCRIPT


def test_celery_settings_match_the_script(compose):
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor" and "AIRFLOW__CORE__EXECUTOR=CeleryExecutor" in SCRIPT
    timeout = re.search(r"TASK_INSTANCE_HEARTBEAT_TIMEOUT:-(\d+)", SCRIPT).group(1)
    assert env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == timeout
    concurrency = re.search(r"WORKER_CONCURRENCY:-(\d+)", SCRIPT).group(1)
    assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == concurrency


def test_airflow_parts_restart_always_as_in_the_script(compose):
    """A database restart makes the scheduler, triggerer and dag-processor exit: both shapes start them again."""
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                 "airflow-worker"):
        assert compose["services"][name]["restart"] == "always", name
    launched = dict(re.findall(r"^    ([a-z-|]+)\) launch \S+ (.*)$", SCRIPT, re.MULTILINE))
    for part in ("api-server", "scheduler", "dag-processor", "triggerer"):
        assert launched[part].startswith('bash -c "$RESTART_ALWAYS"'), part
    assert 'local cmd=(bash -c "$RESTART_ALWAYS"' in SCRIPT  # the workers
