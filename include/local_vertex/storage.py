"""Cloud Storage for the local service: the gcp-storage-emulator process and gs:// reads.

The emulator runs in its own process (persisted under <data-dir>/storage), so GCSHook,
GCSAsyncHook, ObjectStoragePath and google-cloud-storage reach it through
STORAGE_EMULATOR_HOST unchanged. The service itself reads objects over the same JSON API.

Run as a module, this file is the emulator process: `python -m include.local_vertex.storage`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx

from include.local_vertex.processes import die_with_parent, spawn_module, stop_process

log = logging.getLogger(__name__)


class StorageError(ValueError):
    """A gs:// URI that cannot be read: malformed, missing bucket or object, emulator down."""


def split_gs_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("gs://"):
        raise StorageError(f"{uri!r} is not a gs:// URI")
    bucket, _, name = uri[len("gs://"):].partition("/")
    if not bucket or not name or name.endswith("/"):
        raise StorageError(f"{uri!r} does not name an object (expected gs://BUCKET/OBJECT)")
    return bucket, name


class GcsObjects:
    """Reads objects from the emulator over the Cloud Storage JSON API."""

    def __init__(self, storage_url: str, timeout_s: float = 30.0):
        self.storage_url = storage_url.rstrip("/")
        self.timeout_s = timeout_s

    def _object_url(self, uri: str) -> str:
        bucket, name = split_gs_uri(uri)
        return f"{self.storage_url}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"

    def stat(self, uri: str) -> dict:
        """The object's metadata (size, contentType, ...); StorageError if it is not there."""
        try:
            response = httpx.get(self._object_url(uri), timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise StorageError(f"cannot reach the storage emulator at {self.storage_url}: {exc}") from exc
        if response.status_code == 404:
            raise StorageError(f"{uri} does not exist (no such bucket or object)")
        if response.status_code != 200:
            raise StorageError(f"cannot read {uri}: storage answered {response.status_code}")
        return response.json()

    def download(self, uri: str, dest: Path) -> Path:
        """Streams the object to `dest` (written to a temporary name, then renamed)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        try:
            with httpx.stream("GET", self._object_url(uri), params={"alt": "media"}, timeout=self.timeout_s) as response:
                if response.status_code == 404:
                    raise StorageError(f"{uri} does not exist (no such bucket or object)")
                if response.status_code != 200:
                    raise StorageError(f"cannot read {uri}: storage answered {response.status_code}")
                with open(partial, "wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise StorageError(f"cannot download {uri} from {self.storage_url}: {exc}") from exc
        partial.replace(dest)
        return dest


class StorageEmulator:
    """The emulator child process, started and stopped with the service.

    It starts with the pipeline's default buckets (datasets, archive) in place, as a Cloud
    project would have them, so that the pipeline runs against it with no set-up step.
    """

    DEFAULT_BUCKETS = ("gemini-tuning-datasets", "gemini-tuning-archive")

    def __init__(self, host: str, port: int, storage_dir: Path, url: str, buckets: tuple[str, ...] = DEFAULT_BUCKETS):
        self.host = host
        self.port = port
        self.storage_dir = storage_dir
        self.url = url
        self.buckets = buckets
        self._proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        _wait_for_free_port(self.host, self.port, timeout_s=10.0)
        self._proc = spawn_module(
            "include.local_vertex.storage", "--host", self.host, "--port", str(self.port),
            "--data-dir", str(self.storage_dir),
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the storage emulator exited with status {self._proc.returncode} "
                                   f"(is port {self.port} already in use?)")
            if self.alive():
                self._create_buckets()
                log.info("storage emulator serving %s from %s", self.url, self.storage_dir)
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the storage emulator did not answer on {self.url} within {timeout_s:.0f}s")

    def _create_buckets(self) -> None:
        for bucket in self.buckets:
            if httpx.get(f"{self.url}/storage/v1/b/{quote(bucket, safe='')}", timeout=5.0).status_code == 404:
                httpx.post(f"{self.url}/storage/v1/b", json={"name": bucket}, timeout=5.0).raise_for_status()

    def alive(self) -> bool:
        try:
            return httpx.get(self.url + "/", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, grace_s=5.0)
            self._proc = None


def _wait_for_free_port(host: str, port: int, timeout_s: float) -> None:
    """An emulator left by a service that was just killed exits within moments: wait for it."""
    deadline = time.monotonic() + timeout_s
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    return  # let the emulator fail with its own message
        time.sleep(0.2)


def _serve_emulator() -> None:
    parser = argparse.ArgumentParser(description="gcp-storage-emulator, persisted on disk")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args()
    die_with_parent(args.parent_pid)
    logging.basicConfig(level=logging.ERROR)  # the emulator warns on every download

    from gcp_storage_emulator.server import create_server

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = create_server(args.host, args.port, in_memory=False, data_dir=args.data_dir)
    server.start()
    stop.wait()
    server.stop()


if __name__ == "__main__":
    _serve_emulator()
