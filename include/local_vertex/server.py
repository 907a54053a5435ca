"""One command, the whole service: storage emulator, job scheduler, REST API; stopped in order.

SIGINT/SIGTERM make uvicorn finish its requests; then the scheduler stops the workers (their
jobs resume on the next start), the generation process and the emulator stop. Children also die with this process if
it is killed outright (see processes.die_with_parent).
"""

from __future__ import annotations

import fcntl
import logging
import signal
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from include.local_vertex.api import create_app
from include.local_vertex.config import ServiceConfig, is_loopback
from include.local_vertex.generation import GenerationService
from include.local_vertex.scheduler import Scheduler
from include.local_vertex.storage import StorageEmulator
from include.local_vertex.store import JobStore

log = logging.getLogger(__name__)


class DataDirInUse(RuntimeError):
    pass


def serve(config: ServiceConfig, *, access_log: bool = False) -> None:
    for folder in (config.data_dir, config.jobs_dir, config.models_dir, config.storage_dir):
        folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(config.data_dir):
        _serve(config, access_log)


@contextmanager
def _exclusive(data_dir: Path):
    """One service per data dir: a second one would take the first one's jobs for orphans."""
    with open(data_dir / "service.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirInUse(f"another local Vertex service is already using {data_dir}") from None
        yield


def _serve(config: ServiceConfig, access_log: bool) -> None:
    emulator = StorageEmulator(config.storage_host, config.storage_port, config.storage_dir, config.storage_url,
                               allowed_networks=config.storage_allowed_networks)
    emulator.start()
    if not is_loopback(config.storage_host):
        log.warning("the storage emulator listens on %s:%d and answers loopback and %s only (it has no "
                    "authentication)", config.storage_host, config.storage_port,
                    ", ".join(config.storage_allowed_networks))
    store = JobStore(config.db_path)
    scheduler = Scheduler(JobStore(config.db_path), config)
    generation = GenerationService(config)
    try:
        scheduler.start()
        app = create_app(config, store, scheduler, generation, storage_alive=emulator.alive)
        server = uvicorn.Server(uvicorn.Config(
            app, host=config.host, port=config.port, access_log=access_log, log_level="info",
            timeout_graceful_shutdown=5, server_header=False,
        ))
        log.info("local Vertex AI on http://%s:%d (storage emulator %s, data in %s, %s)", config.host,
                 config.port, emulator.url, config.data_dir, "token required" if config.token else "no token")
        # uvicorn re-raises the signal that stopped it once it is done; with this handler in place
        # that re-raise returns here instead of killing the process before the clean-up below.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: log.info("already shutting down"))
        server.run()
    finally:
        log.info("shutting down: stopping workers, then the storage emulator")
        scheduler.stop()
        generation.close()
        emulator.stop()
        log.info("stopped")
