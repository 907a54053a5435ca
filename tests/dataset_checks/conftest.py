"""Fixtures for the dataset checks: small JSONL files and a real Cloud Storage emulator."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BUCKET = "tuning-datasets"


def example(user: str = "What is 2+2?", model: str = "4", system: str | None = None) -> dict:
    """A valid example in the current (contents) format."""
    found: dict = {
        "contents": [
            {"role": "user", "parts": [{"text": user}]},
            {"role": "model", "parts": [{"text": model}]},
        ]
    }
    if system is not None:
        found["systemInstruction"] = {"role": "system", "parts": [{"text": system}]}
    return found


def jsonl(*rows: dict | str | bytes) -> bytes:
    """Join rows into JSONL bytes: dicts are encoded, str/bytes lines are kept verbatim."""
    out = []
    for row in rows:
        if isinstance(row, dict):
            out.append(json.dumps(row).encode())
        else:
            out.append(row.encode() if isinstance(row, str) else row)
    return b"\n".join(out) + b"\n"


@pytest.fixture
def write(tmp_path: Path):
    """write(name, *rows) -> the path of a JSONL file holding those rows."""

    def _write(name: str, *rows: dict | str | bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(jsonl(*rows))
        return path

    return _write


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def _emulator_url(tmp_path_factory):
    """One gcp-storage-emulator process for the session, on a free port."""
    port = _free_port()
    executable = shutil.which("gcp-storage-emulator", path=str(Path(sys.executable).parent))
    process = subprocess.Popen(
        [executable, "start", "--port", str(port), "--in-memory", "--default-bucket", BUCKET, "-q"],
        cwd=tmp_path_factory.mktemp("emulator"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("gcp-storage-emulator did not start")
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def storage_emulator(_emulator_url, monkeypatch):
    """The emulator, with the default GCS connection pointed at it (anonymous) for this test only."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", _emulator_url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
        json.dumps({"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "local-project"}}),
    )
    return _emulator_url
