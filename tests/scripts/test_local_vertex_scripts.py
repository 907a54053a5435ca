"""What the scripts hand the local service: a random token per data folder, readable by its
owner only, and data roots that hold datasets, not the service's own files."""

from __future__ import annotations

import os
import stat
import subprocess

from tests.conftest import PROJECT_ROOT


def sourced(script: str, data_dir, **env) -> str:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("LOCAL_VERTEX_TOKEN", "LOCAL_VERTEX_DATA_ROOTS", "AIRFLOW_CONN_GEMINI_TUNING_DEFAULT")}
    environment.update(LOCAL_VERTEX_DATA=str(data_dir), **env)
    return subprocess.run(["bash", "-c", f"source scripts/env.sh && {script}"], cwd=PROJECT_ROOT, env=environment,
                          capture_output=True, text=True, check=True).stdout.strip()


def test_each_data_folder_gets_its_own_random_token_readable_by_its_owner_only(tmp_path):
    first = sourced('echo "$LOCAL_VERTEX_TOKEN"', tmp_path / "one")
    assert len(first) == 48 and int(first, 16)
    assert (tmp_path / "one" / "token").read_text() == first
    assert stat.S_IMODE((tmp_path / "one" / "token").stat().st_mode) == 0o600
    assert sourced('echo "$LOCAL_VERTEX_TOKEN"', tmp_path / "one") == first  # kept
    assert sourced('echo "$LOCAL_VERTEX_TOKEN"', tmp_path / "two") != first
    connection = sourced('echo "$AIRFLOW_CONN_GEMINI_TUNING_DEFAULT"', tmp_path / "one")
    assert f'"password": "{first}"' in connection
    assert sourced('echo "$LOCAL_VERTEX_TOKEN"', tmp_path / "three", LOCAL_VERTEX_TOKEN="mine") == "mine"


def test_the_service_is_started_with_the_data_folders_as_roots_not_the_project(tmp_path):
    # `python` stands in for the service: it records its arguments, then fails the health check.
    # The service's call runs in the background, beside the health check's, so each call records
    # into a file of its own: bash's printf writes line by line, and two calls appending to one
    # file interleaved their lines. `wait` lets the service's call finish before the script's EXIT
    # trap would SIGTERM it.
    calls_dir = tmp_path / "calls"
    calls_dir.mkdir()
    stub = f'python() {{ printf "%s\\n" "$@" >"$(mktemp "{calls_dir}/call.XXXXXX")"; return 1; }}'
    subprocess.run(["bash", "-c", f"source scripts/env.sh && source scripts/local-vertex.sh && {stub} && "
                                  "start_local_vertex; wait; true"],
                   cwd=PROJECT_ROOT, env={**os.environ, "LOCAL_VERTEX_DATA": str(tmp_path / "data")},
                   capture_output=True, text=True, check=True)
    calls = [call.read_text().splitlines() for call in calls_dir.iterdir()]
    serve = next(call for call in calls if call[:3] == ["-m", "include.local_vertex", "serve"])
    roots = [serve[i + 1] for i, argument in enumerate(serve) if argument == "--data-root"]
    assert roots == [str(PROJECT_ROOT / "include" / "sample_data"), str(PROJECT_ROOT / "data")]
    assert str(PROJECT_ROOT) not in roots
