"""The service's settings, one dataclass shared by the CLI, the API, the scheduler and the worker."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from include.tuning_engine.spec import DEFAULT_CHECKPOINT_INTERVAL_S


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8790
    storage_port: int = 8791
    # The storage emulator has no authentication: it stays on loopback unless exposed on purpose,
    # and then answers only the networks named here (e.g. the private network of the containers).
    storage_host: str = "127.0.0.1"
    storage_allowed_networks: tuple[str, ...] = ()
    data_dir: Path = Path(".local_vertex")
    token: str | None = None  # bearer token required on every API call when set
    max_concurrent_jobs: int = 1  # like Vertex's default tuning quota
    base_model: str | None = None  # overrides what gemini-* names resolve to (tests: a tiny model)
    data_roots: tuple[Path, ...] = field(default_factory=tuple)  # where file:// URIs may point
    max_request_bytes: int = 8 * 1024 * 1024
    cancel_grace_s: float = 10.0  # cooperative stop first, then SIGTERM, then SIGKILL
    # On shutdown a worker gets SIGTERM and this long to exit; its job resumes on the next start
    # either way (a worker still busy after it is killed, which only costs the steps since its
    # last checkpoint).
    stop_grace_s: float = 30.0
    # A worker that reports no progress for this long is hung: it is killed and its job FAILED.
    # Progress is reported every training step and every few hundred examples tokenized; the
    # longest silent phase is the one-time conversion of the bundled model (about a minute).
    worker_hang_timeout_s: float = 900.0
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S  # within an epoch
    torch_threads: int | None = None  # None: see worker_threads and generator_threads
    generation_timeout_s: float = 300.0  # per generateContent request, then DEADLINE_EXCEEDED
    generation_max_queue: int = 64  # generateContent requests waiting or running; more get 429
    max_resumes: int = 2  # crashes of the service (not clean stops) a job survives before it is FAILED

    def worker_threads(self) -> int:
        """Torch threads of one training worker: --torch-threads, or else the cores but one (for
        the API, the generator and Airflow), shared by the jobs that may train at once."""
        return self.torch_threads or max(1, (_cores() - 1) // self.max_concurrent_jobs)

    def worker_max_threads(self) -> int:
        """The most torch threads a worker's training steps may use when timing shows them faster:
        its share of all the cores, the one left to the rest included. --torch-threads pins it."""
        return self.torch_threads or max(1, _cores() // self.max_concurrent_jobs)

    def generator_threads(self) -> int:
        """Torch threads of the generation process: --torch-threads, or else one share of the cores
        in max_concurrent_jobs + 1. Generating while every slot trains then oversubscribes the
        CPU by that one share at most, where a generator with all cores would make every
        training step wait on descheduled threads."""
        return self.torch_threads or max(1, _cores() // (self.max_concurrent_jobs + 1))

    def generator_max_threads(self) -> int:
        """The most torch threads the generator's decoding steps may use when timing shows them
        faster (no job training beside them, say): all the cores. --torch-threads pins it."""
        return self.torch_threads or _cores()

    def __post_init__(self):
        object.__setattr__(self, "data_dir", Path(self.data_dir).resolve())
        object.__setattr__(self, "data_roots", tuple(Path(r).resolve() for r in self.data_roots))
        if self.max_concurrent_jobs < 1:
            raise ValueError("--max-concurrent-jobs must be at least 1")

    def check_safe_to_serve(self) -> None:
        """The service refuses to listen beyond this machine without protection: a token for the
        API, a list of allowed client networks for the storage emulator (which has no auth)."""
        if not self.token and not is_loopback(self.host):
            raise ValueError(
                f"refusing to bind {self.host}: a non-loopback address needs --token "
                "(or LOCAL_VERTEX_TOKEN), else anyone on the network could run jobs and read data"
            )
        if not is_loopback(self.storage_host) and not self.storage_allowed_networks:
            raise ValueError(
                f"refusing to expose the storage emulator on {self.storage_host}: it has no authentication, "
                "so anyone who reaches it could read or replace any dataset; name the networks allowed to "
                "reach it with --storage-allow CIDR (e.g. your containers' private network)"
            )
        for network in self.storage_allowed_networks:
            try:
                ipaddress.ip_network(network)
            except ValueError:
                raise ValueError(f"--storage-allow {network!r} is not a network such as 10.0.0.0/8") from None

    @property
    def storage_url(self) -> str:
        """Where this service's own processes reach the emulator."""
        host = "127.0.0.1" if self.storage_host in ("0.0.0.0", "::", "") else self.storage_host
        return f"http://{host}:{self.storage_port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "jobs.sqlite"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def heartbeat_path(self, job_id: str) -> Path:
        """Touched by the job's worker whenever it makes progress; its age tells a hung worker."""
        return self.job_dir(job_id) / "heartbeat"


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def worker_settings(config: ServiceConfig) -> dict:
    """What a worker or the generation process needs from the config (never the token: argv is
    world-readable)."""
    return {
        "data_dir": str(config.data_dir),
        "storage_host": config.storage_host,
        "storage_port": config.storage_port,
        "base_model": config.base_model,
        "data_roots": [str(r) for r in config.data_roots],
        "torch_threads": config.torch_threads,
        "max_concurrent_jobs": config.max_concurrent_jobs,
        "checkpoint_interval_s": config.checkpoint_interval_s,
    }


def config_from_worker_settings(settings: dict) -> ServiceConfig:
    return ServiceConfig(
        data_dir=Path(settings["data_dir"]),
        storage_host=settings["storage_host"],
        storage_port=settings["storage_port"],
        base_model=settings["base_model"],
        data_roots=tuple(Path(r) for r in settings["data_roots"]),
        torch_threads=settings["torch_threads"],
        max_concurrent_jobs=settings["max_concurrent_jobs"],
        checkpoint_interval_s=settings["checkpoint_interval_s"],
    )
