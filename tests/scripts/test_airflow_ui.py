"""`scripts/airflow-ui.sh` stops on Ctrl-C: the terminal's SIGINT to its process group ends the
script, the local service and the whole of `airflow standalone` within seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from include.local_vertex.processes import pid_alive
from tests.conftest import PROJECT_ROOT
from tests.fixtures.local_vertex import free_port

pytestmark = pytest.mark.slow


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def as_a_terminal_job() -> None:
    """SIGINT as a terminal gives it. A runner started in the background (CI) has it ignored, and
    a shell cannot trap a signal ignored when it started, so Ctrl-C would never reach the trap."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_everything_the_ui_script_started(tmp_path):
    api_port, service_port, storage_port = free_port(), free_port(), free_port()
    env = {**os.environ, "AIRFLOW__API__PORT": str(api_port), "AIRFLOW__CORE__PARALLELISM": "2",
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
           "LOCAL_VERTEX_PORT": str(service_port), "LOCAL_VERTEX_STORAGE_PORT": str(storage_port)}
    for name in ("LOCAL_VERTEX_TOKEN", "STORAGE_EMULATOR_HOST", "AIRFLOW_CONN_GEMINI_TUNING_DEFAULT"):
        env.pop(name, None)  # as in a fresh shell: the script's env.sh sets them for these ports
    log_path = tmp_path / "airflow-ui.log"
    with open(log_path, "wb") as log:
        # its own process group, as a terminal's foreground job: Ctrl-C is SIGINT to that group
        script = subprocess.Popen([str(PROJECT_ROOT / "scripts" / "airflow-ui.sh")], env=env, cwd=PROJECT_ROOT,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                  preexec_fn=as_a_terminal_job)
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 540  # the bundled model is converted on a first start
        while not (answers(f"http://127.0.0.1:{api_port}/api/v2/version")
                   and answers(f"http://127.0.0.1:{service_port}/health")):
            assert script.poll() is None, f"the script exited early:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the UI did not come up:\n{log_path.read_text()[-3000:]}"
            time.sleep(2)
        started |= descendants(script.pid)
        assert len(started) >= 4  # the service, its emulator, standalone and its components

        os.killpg(script.pid, signal.SIGINT)
        assert script.wait(timeout=60) != 0
        deadline = time.monotonic() + 30
        while left := {pid for pid in started if pid_alive(pid)}:
            assert time.monotonic() < deadline, f"still running after Ctrl-C: {sorted(left)}"
            time.sleep(0.2)
        assert not answers(f"http://127.0.0.1:{api_port}/api/v2/version")
        assert not answers(f"http://127.0.0.1:{service_port}/health")
    finally:  # a failed test leaves nothing behind either
        for pid in {script.pid} | started | descendants(script.pid):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        script.wait()
