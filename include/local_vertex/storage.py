"""Cloud Storage for the local service: the gcp-storage-emulator process and gs:// reads.

The emulator runs in its own process (persisted under <data-dir>/storage), so GCSHook,
GCSAsyncHook, ObjectStoragePath and google-cloud-storage reach it through
STORAGE_EMULATOR_HOST unchanged. The service itself reads objects over the same JSON API.

Run as a module, this file is the emulator process: `python -m include.local_vertex.storage`.
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import logging
import os
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
    project would have them, so that the pipeline runs against it with no set-up step. It has no
    authentication of its own: beyond loopback it answers only clients in `allowed_networks`.
    """

    DEFAULT_BUCKETS = ("gemini-tuning-datasets", "gemini-tuning-archive")

    def __init__(self, host: str, port: int, storage_dir: Path, url: str, buckets: tuple[str, ...] = DEFAULT_BUCKETS,
                 allowed_networks: tuple[str, ...] = ()):
        self.host = host
        self.port = port
        self.storage_dir = storage_dir
        self.url = url
        self.buckets = buckets
        self.allowed_networks = allowed_networks
        self._proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        _wait_for_free_port(self.host, self.port, timeout_s=10.0)
        self._proc = spawn_module(
            "include.local_vertex.storage", "--host", self.host, "--port", str(self.port),
            "--data-dir", str(self.storage_dir),
            *(argument for network in self.allowed_networks for argument in ("--allow", network)),
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


STOP_GRACE_S = 3.0
CLIENT_TIMEOUT_S = 60.0
_REQUESTS_ONE_AT_A_TIME = threading.Lock()  # the package's Storage is not thread-safe


def _serve_emulator() -> None:
    """The emulator process: serve until SIGTERM/SIGINT or until the parent is gone.

    The stop path takes no lock and waits on no client: the signals are blocked and taken with
    sigwait (no Python handler runs, so a second signal cannot re-enter one), each connection
    has its own daemon thread with a socket time-out, and the process exits within
    STOP_GRACE_S whatever a request is doing.
    """
    parser = argparse.ArgumentParser(description="gcp-storage-emulator, persisted on disk")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--allow", action="append", default=[],
                        help="network (CIDR) whose clients may connect, besides loopback (repeatable)")
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args()
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # before any thread starts: all inherit it
    die_with_parent(args.parent_pid)
    logging.basicConfig(level=logging.ERROR)  # the emulator warns on every download

    httpd = _emulator_http_server(args.host, args.port, Path(args.data_dir), tuple(args.allow))
    threading.Thread(target=httpd.serve_forever, name="storage-api", daemon=True).start()
    threading.Thread(target=_signal_when_orphaned, args=(args.parent_pid,), name="parent-watch", daemon=True).start()
    signal.sigwait(stop_signals)
    deadline = time.monotonic() + STOP_GRACE_S
    stopper = threading.Thread(target=httpd.shutdown, daemon=True)  # returns once serve_forever has
    stopper.start()
    stopper.join(STOP_GRACE_S)
    # Let a request that is writing finish; one still reading its client's bytes is dropped, as
    # a client drop would be.
    _REQUESTS_ONE_AT_A_TIME.acquire(timeout=max(0.0, deadline - time.monotonic()))
    os._exit(0)


def _emulator_http_server(host: str, port: int, data_dir: Path, allowed_networks: tuple[str, ...] = ()):
    """gcp-storage-emulator's handler and storage behind a threading server.

    The package's own server answers one connection at a time, so one stalled client stops every
    other client and its shutdown. Requests still run one at a time (the package's Storage is not
    thread-safe), but waiting for a slow client's bytes happens outside that lock, with a time-out.
    """
    from functools import partial
    from http.server import ThreadingHTTPServer

    from gcp_storage_emulator.server import RequestHandler, _read_raw_data
    from gcp_storage_emulator.storage import Storage

    class Handler(RequestHandler):
        timeout = CLIENT_TIMEOUT_S

        def handle_one_request(self):
            # Read the whole request unlocked (a slow client holds only its own thread), then
            # run it under the lock from the bytes in memory.
            try:
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or len(self.raw_requestline) > 65536 or not self.parse_request():
                    self.close_connection = True
                    return
                method = getattr(self, "do_" + self.command, None)
                if method is None:
                    self.send_error(501, f"Unsupported method ({self.command!r})")
                    return
                body = _read_raw_data(self)
            except TimeoutError:
                self.close_connection = True
                return
            if body is not None:
                del self.headers["Transfer-Encoding"]
                del self.headers["Content-Length"]
                self.headers["Content-Length"] = str(len(body))
                self.connection_rfile, self.rfile = self.rfile, io.BytesIO(body)
            with _REQUESTS_ONE_AT_A_TIME:
                method()
            self.wfile.flush()

        def finish(self):
            super().finish()
            if hasattr(self, "connection_rfile"):
                self.connection_rfile.close()

    networks = [ipaddress.ip_network(network) for network in allowed_networks]

    class Server(ThreadingHTTPServer):
        def verify_request(self, request, client_address):
            """Loopback and the allowed networks only: anyone else is disconnected unanswered."""
            client = ipaddress.ip_address(client_address[0])
            return client.is_loopback or any(client in network for network in networks)

    server = Server((host, port), partial(Handler, Storage(use_memory_fs=False, data_dir=str(data_dir))))
    server.daemon_threads = True
    return server


def _signal_when_orphaned(parent_pid: int) -> None:
    """PR_SET_PDEATHSIG covers a dying parent thread, not every way a parent goes: poll as well."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    _serve_emulator()
