"""The storage emulator process ends on a stop and with its parent, whatever its clients do.

A clean-clone CI run once found an emulator alive 50 minutes after its service was killed, deaf
to SIGTERM: its single-threaded server sat in a request that never completed, so the stop path
waited forever. These tests hold such a connection open while they stop the emulator.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from include.local_vertex.processes import PROJECT_ROOT, child_env, pid_alive
from tests.fixtures.local_vertex import free_port

STOP_WITHIN_S = 10  # the emulator's own bound is 3 s; the rest is margin for a loaded machine


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        return httpx.get(url + "/", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def stalled_request(port: int) -> socket.socket:
    """A client that sent half a request and went quiet: the handler waits for the rest."""
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(b"POST /upload/storage/v1/b/x/o?uploadType=media&name=y HTTP/1.1\r\n"
                   b"Host: 127.0.0.1\r\nContent-Length: 1000\r\n\r\npartial")
    return client


def emulator_command(port: int, data_dir: Path, parent_pid: int) -> list[str]:
    return [sys.executable, "-m", "include.local_vertex.storage", "--host", "127.0.0.1",
            "--port", str(port), "--data-dir", str(data_dir), "--parent-pid", str(parent_pid)]


@pytest.fixture
def emulator(tmp_path):
    port = free_port()
    proc = subprocess.Popen(emulator_command(port, tmp_path, parent_pid=os.getpid()), env=child_env(), cwd=PROJECT_ROOT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(url) or proc.poll() is not None, 60, "the emulator did not start")
        assert proc.poll() is None, f"the emulator exited with {proc.returncode}"
        yield proc, port, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_serves_other_clients_while_one_request_stalls(emulator):
    _, port, url = emulator
    with stalled_request(port):
        assert answers(url)


def test_sigterm_ends_it_while_a_request_stalls(emulator):
    proc, port, _ = emulator
    with stalled_request(port):
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=STOP_WITHIN_S)
    assert proc.returncode == 0


def test_a_burst_of_signals_ends_it(emulator):
    """Signals that arrive while the first one is being handled must not wedge the stop."""
    proc, port, _ = emulator
    with stalled_request(port):
        for _ in range(20):
            proc.send_signal(signal.SIGTERM if _ % 2 else signal.SIGINT)
        proc.wait(timeout=STOP_WITHIN_S)


def test_it_dies_with_a_parent_killed_by_sigkill(tmp_path):
    """The parent here is a plain Python process that starts the emulator the way the service does."""
    port = free_port()
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import os, subprocess, sys, time\n"
         f"cmd = {emulator_command(port, tmp_path, parent_pid=0)!r}\n"
         "cmd[cmd.index('--parent-pid') + 1] = str(os.getpid())\n"
         "child = subprocess.Popen(cmd, start_new_session=True)\n"
         "print(child.pid, flush=True)\n"
         "time.sleep(600)\n"],
        env=child_env(), cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
    )
    emulator_pid = int(parent.stdout.readline())
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(url), 60, "the emulator did not start")
        with stalled_request(port):
            parent.kill()
            parent.wait()
            wait_until(lambda: not pid_alive(emulator_pid), STOP_WITHIN_S, "the emulator outlived its parent")
    finally:
        parent.kill()
        parent.wait()
        if pid_alive(emulator_pid):
            os.kill(emulator_pid, signal.SIGKILL)
