"""Child processes that cannot outlive the service: workers, the generation process, the storage emulator.

Each child asks the kernel for SIGTERM when its parent dies (Linux prctl PR_SET_PDEATHSIG), so
even a service killed with -9 leaves no orphan behind for longer than the child's own clean-up.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Called first thing in a child: SIGTERM me when `parent_pid` goes away."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def child_env(**extra: str) -> dict[str, str]:
    """The service's environment with the project importable, whatever the working directory."""
    env = dict(os.environ)
    paths = [str(PROJECT_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(extra)
    return env


def spawn_module(module: str, *args: str, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args, "--parent-pid", str(os.getpid())],
        env=env or child_env(),
        cwd=PROJECT_ROOT,
        start_new_session=True,  # a Ctrl-C on the terminal reaches the service, which stops us in order
        **popen,
    )


def stop_process(proc: subprocess.Popen, grace_s: float) -> int:
    """SIGTERM, wait up to `grace_s`, then SIGKILL. Returns the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def stop_pid(pid: int, grace_s: float) -> None:
    """Like stop_process for a process that is not our child (a worker left by a dead service)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():  # a zombie is dead for our purposes
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    return True


def is_worker_of(pid: int, job_id: str) -> bool:
    """True if `pid` is a live worker process for `job_id` (pids get reused after a restart)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"include.local_vertex.worker" in argv and job_id.encode() in argv and pid_alive(pid)


def describe_exit(status: int) -> str:
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name} ({-status})"
    return f"exited with status {status}"
