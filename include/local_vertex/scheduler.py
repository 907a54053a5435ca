"""The job queue: starts a worker process per job up to the concurrency limit, enforces cancels,
ends jobs whose worker died or hung, and recovers the jobs a stopped service left behind.

It runs as one thread in the API process and never trains: training happens in the workers.
A stop of the service never fails a job: the workers are stopped, their jobs marked as stopped
cleanly, and the next start resumes them without spending one of their resumes, which are
for crashes (a service killed outright) only.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from dataclasses import dataclass, field

from include.local_vertex.config import ServiceConfig, worker_settings
from include.local_vertex.errors import cancelled_error, job_error
from include.local_vertex.processes import describe_exit, is_worker_of, spawn_module, stop_pid
from include.local_vertex.store import ACTIVE_STATES, JobRecord, JobStore
from include.local_vertex.worker import EXIT_INTERRUPTED

log = logging.getLogger(__name__)
_KILL_AFTER_TERM_S = 3.0


@dataclass
class _Worker:
    proc: subprocess.Popen
    started_at: float = field(default_factory=time.time)  # wall clock, as the heartbeat file's mtime
    cancel_seen_at: float | None = None
    terminated_at: float | None = None


class Scheduler:
    def __init__(self, store: JobStore, config: ServiceConfig, poll_s: float = 0.2):
        self.store = store
        self.config = config
        self.poll_s = poll_s
        self._workers: dict[str, _Worker] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="local-vertex-scheduler", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the queue now (a job was created or cancelled) rather than at the next tick."""
        self._wake.set()

    def stop(self) -> None:
        """Stops the loop, then the workers: their jobs stay active and resume on the next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self._reap()  # a worker that ended before the stop ended its job, or failed it
        for worker in self._workers.values():  # all at once: each gets the whole grace
            worker.proc.terminate()
        deadline = time.monotonic() + self.config.stop_grace_s
        for job_id, worker in self._workers.items():
            try:
                status = worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("job %s: worker still busy %.0fs after SIGTERM, killing it", job_id,
                            self.config.stop_grace_s)
                worker.proc.kill()
                status = worker.proc.wait()
            record = self.store.update(job_id, _stopped_cleanly)
            log.info("job %s: worker stopped for shutdown (%s); the job %s", job_id, describe_exit(status),
                     "resumes on the next start" if record and record.state in ACTIVE_STATES else "had ended")
        self._workers.clear()
        self.store.close()

    def recover(self) -> None:
        """Jobs left active by a service that stopped: resume them, or fail them "interrupted"."""
        for record in self.store.in_states(ACTIVE_STATES):
            if record.worker_pid and is_worker_of(record.worker_pid, record.id):
                log.info("job %s: stopping worker %d left by the previous run", record.id, record.worker_pid)
                stop_pid(record.worker_pid, self.config.cancel_grace_s)
            self.store.update(record.id, self._recovered)

    def _recovered(self, record: JobRecord):
        record.worker_pid = None
        stopped_cleanly = record.internal.pop("stoppedCleanly", False)
        if record.state == "JOB_STATE_CANCELLING":
            record.set_state("JOB_STATE_CANCELLED", error=cancelled_error())
        elif record.state not in ACTIVE_STATES:
            return False
        elif stopped_cleanly:
            record.set_state("JOB_STATE_QUEUED")
            log.info("job %s: stopped with the service; queued to resume from its last checkpoint", record.id)
        elif record.resume_count < self.config.max_resumes:
            record.resume_count += 1
            record.set_state("JOB_STATE_QUEUED")
            log.info("job %s: interrupted by a service crash; queued to resume from its last checkpoint "
                     "(resume %d of %d)", record.id, record.resume_count, self.config.max_resumes)
        else:
            record.set_state("JOB_STATE_FAILED", error=job_error(
                "ABORTED", f"interrupted: the service crashed while the job was running "
                           f"{record.resume_count + 1} times"))
            log.warning("job %s: FAILED, interrupted by too many crashes", record.id)

    # -- the loop ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._reap()
                self._enforce_cancels()
                self._stop_hung_workers()
                self._start_queued()
            except Exception:  # noqa: BLE001 - the loop must outlive one bad tick
                log.exception("scheduler tick failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _reap(self) -> None:
        for job_id, worker in list(self._workers.items()):
            status = worker.proc.poll()
            if status is None:
                continue
            del self._workers[job_id]
            self._end_if_still_active(job_id, status)

    def _end_if_still_active(self, job_id: str, status: int) -> None:
        """A worker that exits leaves its job ended; if it did not, say why the job ended.

        A worker stopped by a signal that did not come from us (a stop of the whole process
        group, say) is no failure: its job goes back to the queue and resumes.
        """
        reason = f"the worker process {describe_exit(status)}"

        def change(record: JobRecord):
            record.worker_pid = None
            if record.state not in ACTIVE_STATES:
                return
            if record.state == "JOB_STATE_CANCELLING":
                record.set_state("JOB_STATE_CANCELLED", error=cancelled_error())
            elif status == EXIT_INTERRUPTED:
                record.set_state("JOB_STATE_QUEUED")
            else:
                log_file = self.config.job_dir(job_id) / "worker.log"
                record.set_state("JOB_STATE_FAILED", error=job_error("INTERNAL", f"{reason}; see {log_file}"))

        record = self.store.update(job_id, change)
        if record is not None:
            log.info("job %s: worker finished (%s), job %s", job_id, describe_exit(status), record.state)

    def _enforce_cancels(self) -> None:
        """Cooperative stop first (the worker polls the state), then SIGTERM, then SIGKILL."""
        now = time.monotonic()
        for job_id, worker in self._workers.items():
            if worker.cancel_seen_at is None:
                record = self.store.get(job_id)
                if record is None or record.state != "JOB_STATE_CANCELLING":
                    continue
                worker.cancel_seen_at = now
            if worker.terminated_at is None and now - worker.cancel_seen_at > self.config.cancel_grace_s:
                log.warning("job %s: worker ignored the cancel for %.0fs, terminating it", job_id,
                            self.config.cancel_grace_s)
                worker.proc.terminate()
                worker.terminated_at = now
            elif worker.terminated_at is not None and now - worker.terminated_at > _KILL_AFTER_TERM_S:
                worker.proc.kill()

    def _stop_hung_workers(self) -> None:
        """A worker silent for longer than the hang time-out is killed, and its job FAILED so."""
        now = time.time()
        timeout = self.config.worker_hang_timeout_s
        for job_id, worker in self._workers.items():
            if worker.terminated_at is not None:
                continue
            try:
                last_progress = max(worker.started_at, self.config.heartbeat_path(job_id).stat().st_mtime)
            except FileNotFoundError:
                last_progress = worker.started_at
            if now - last_progress <= timeout:
                continue
            log_file = self.config.job_dir(job_id) / "worker.log"
            log.warning("job %s: worker %d made no progress for %.0fs, killing it", job_id, worker.proc.pid, timeout)
            self.store.transition(job_id, ["JOB_STATE_PENDING", "JOB_STATE_RUNNING"], "JOB_STATE_FAILED",
                                  error=job_error("INTERNAL", f"the worker made no progress for {timeout:.0f} s "
                                                              f"(hung) and was stopped; see {log_file}"))
            worker.proc.kill()  # hung: it may not get to handle a SIGTERM
            worker.terminated_at = time.monotonic()

    def _start_queued(self) -> None:
        if len(self._workers) >= self.config.max_concurrent_jobs:
            return
        for record in self.store.in_states(["JOB_STATE_QUEUED"]):
            if len(self._workers) >= self.config.max_concurrent_jobs or self._stopping.is_set():
                return
            if self.store.transition(record.id, ["JOB_STATE_QUEUED"], "JOB_STATE_PENDING") is None:
                continue  # cancelled meanwhile
            self._spawn(record.id)

    def _spawn(self, job_id: str) -> None:
        # Spawned from this thread on purpose: the workers' parent-death signal fires when the
        # thread that started them ends, which is when the scheduler stops.
        try:
            proc = spawn_module(
                "include.local_vertex.worker", "--job-id", job_id,
                "--settings", json.dumps(worker_settings(self.config)),
            )
        except OSError as exc:
            log.exception("job %s: cannot start a worker", job_id)
            self.store.transition(job_id, ["JOB_STATE_PENDING", "JOB_STATE_CANCELLING"], "JOB_STATE_FAILED",
                                  error=job_error("INTERNAL", f"cannot start a worker process: {exc}"))
            return
        self._workers[job_id] = _Worker(proc)

        def remember_pid(record: JobRecord):
            record.worker_pid = proc.pid

        self.store.update(job_id, remember_pid)
        log.info("job %s: worker %d started", job_id, proc.pid)

    @property
    def workers(self) -> dict[str, int]:
        """Job id -> worker pid, for the health endpoint and tests."""
        return {job_id: worker.proc.pid for job_id, worker in dict(self._workers).items()}


def _stopped_cleanly(record: JobRecord):
    """Marks a job whose worker the service stopped: the next start resumes it for free."""
    record.worker_pid = None
    if record.state in ACTIVE_STATES:
        record.internal["stoppedCleanly"] = True
