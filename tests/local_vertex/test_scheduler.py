"""Recovery of the jobs a stopped service left active, straight against the store."""

from __future__ import annotations

import subprocess
import sys
import time

from include.local_vertex.config import ServiceConfig
from include.local_vertex.scheduler import Scheduler
from include.local_vertex.processes import pid_alive
from include.local_vertex.store import JobStore


def _job(store: JobStore, job_id: str, state: str, resume_count: int = 0) -> None:
    store.insert(job_id, "p", "l", {"name": f"projects/p/locations/l/tuningJobs/{job_id}", "state": state,
                                     "createTime": "2026-01-01T00:00:00.000000Z",
                                     "updateTime": "2026-01-01T00:00:00.000000Z"})
    store.update(job_id, lambda record: setattr(record, "resume_count", resume_count))


def test_recovery_resumes_fails_or_cancels_and_leaves_nothing_running(tmp_path):
    config = ServiceConfig(data_dir=tmp_path, max_resumes=2)
    store = JobStore(config.db_path)
    _job(store, "1", "JOB_STATE_RUNNING")
    _job(store, "2", "JOB_STATE_RUNNING", resume_count=2)
    _job(store, "3", "JOB_STATE_CANCELLING")
    _job(store, "4", "JOB_STATE_PENDING")
    _job(store, "5", "JOB_STATE_SUCCEEDED")

    Scheduler(store, config).recover()

    resumed = store.get("1")
    assert (resumed.state, resumed.resume_count) == ("JOB_STATE_QUEUED", 1)
    failed = store.get("2").resource
    assert failed["state"] == "JOB_STATE_FAILED" and failed["error"]["message"].startswith("interrupted")
    assert failed["endTime"]
    assert store.get("3").state == "JOB_STATE_CANCELLED"
    assert store.get("4").state == "JOB_STATE_QUEUED"
    assert store.get("5").state == "JOB_STATE_SUCCEEDED"
    assert not store.in_states(["JOB_STATE_RUNNING", "JOB_STATE_PENDING", "JOB_STATE_CANCELLING"])


def test_a_clean_stop_does_not_spend_a_resume(tmp_path):
    config = ServiceConfig(data_dir=tmp_path, max_resumes=2)
    store = JobStore(config.db_path)
    _job(store, "1", "JOB_STATE_RUNNING", resume_count=2)  # no crash credit left
    store.update("1", lambda record: record.internal.update(stoppedCleanly=True))

    Scheduler(store, config).recover()

    record = store.get("1")
    assert (record.state, record.resume_count) == ("JOB_STATE_QUEUED", 2)
    assert "stoppedCleanly" not in record.internal


def _fake_workers(monkeypatch, code: str) -> None:
    """Workers that run `code` instead of training (the scheduler cannot tell)."""
    from include.local_vertex import scheduler

    monkeypatch.setattr(scheduler, "spawn_module",
                        lambda *args, **kwargs: subprocess.Popen([sys.executable, "-c", code]))


def _wait_for(condition, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s:.0f}s"
        time.sleep(0.05)


def test_a_stop_never_fails_a_job_even_when_its_worker_must_be_killed(tmp_path, monkeypatch):
    # A worker busy in a phase that does not see SIGTERM in time (it ignores it here).
    _fake_workers(monkeypatch, "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(120)")
    config = ServiceConfig(data_dir=tmp_path, stop_grace_s=0.5)
    store = JobStore(config.db_path)
    _job(store, "1", "JOB_STATE_QUEUED")
    scheduler = Scheduler(store, config, poll_s=0.05)
    scheduler.start()
    _wait_for(lambda: "1" in scheduler.workers, "the worker start")
    pid = scheduler.workers["1"]
    store.transition("1", ["JOB_STATE_PENDING"], "JOB_STATE_RUNNING")

    scheduler.stop()

    assert not pid_alive(pid)
    after = JobStore(config.db_path)
    record = after.get("1")
    assert record.state == "JOB_STATE_RUNNING" and record.internal["stoppedCleanly"] is True
    Scheduler(after, config).recover()
    assert (after.get("1").state, after.get("1").resume_count) == ("JOB_STATE_QUEUED", 0)


def test_a_hung_worker_is_killed_and_its_job_failed_with_the_reason(tmp_path, monkeypatch):
    _fake_workers(monkeypatch, "import time\ntime.sleep(120)")  # never touches its heartbeat
    config = ServiceConfig(data_dir=tmp_path, worker_hang_timeout_s=1.0)
    store = JobStore(config.db_path)
    _job(store, "1", "JOB_STATE_QUEUED")
    _job(store, "2", "JOB_STATE_QUEUED")
    scheduler = Scheduler(store, config, poll_s=0.05)
    scheduler.start()
    try:
        _wait_for(lambda: store.get("1").state == "JOB_STATE_FAILED", "failing the hung job")
        assert "no progress for 1 s (hung)" in store.get("1").resource["error"]["message"]
        _wait_for(lambda: "2" in scheduler.workers, "the next job taking the freed slot")
    finally:
        scheduler.stop()


def _pending_job(store: JobStore, config: ServiceConfig, uri: str, pin: dict | None) -> None:
    store.insert("7", "p", "l", {
        "name": "projects/p/locations/l/tuningJobs/7", "state": "JOB_STATE_PENDING", "baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {"trainingDatasetUri": uri},
        "createTime": "2026-01-01T00:00:00.000000Z", "updateTime": "2026-01-01T00:00:00.000000Z",
    }, internal={"datasetPins": {"trainingDatasetUri": pin}} if pin else {})


def test_data_changed_after_create_fails_the_job(tmp_path):
    from include.local_vertex.datasets import check_dataset_uri
    from include.local_vertex.worker import JobRun, StopRequest

    data = tmp_path / "data.jsonl"
    data.write_text('{"contents": []}\n')
    config = ServiceConfig(data_dir=tmp_path / "service", data_roots=(tmp_path,))
    store = JobStore(config.db_path)
    _pending_job(store, config, data.as_uri(), check_dataset_uri(data.as_uri(), config, field="f"))
    data.write_text('{"contents": ["replaced"]}\n')

    assert JobRun(store, config, "7", StopRequest()).run() == 0
    error = store.get("7").resource["error"]
    assert store.get("7").state == "JOB_STATE_FAILED" and error["code"] == 9
    assert "changed after the job was created" in error["message"]


def test_an_error_after_a_cancel_ends_the_job_cancelled(tmp_path, monkeypatch):
    from include.local_vertex import worker

    config = ServiceConfig(data_dir=tmp_path / "service", data_roots=(tmp_path,))
    store = JobStore(config.db_path)
    _pending_job(store, config, (tmp_path / "data.jsonl").as_uri(), None)

    def cancelled_then_broken(*args, **kwargs):
        store.transition("7", ["JOB_STATE_PENDING"], "JOB_STATE_CANCELLING")  # the user cancels...
        raise OSError("disk gone")  # ...and the worker then fails on its own

    monkeypatch.setattr(worker, "local_dataset_file", cancelled_then_broken)
    assert worker.JobRun(store, config, "7", worker.StopRequest()).run() == 0
    record = store.get("7")
    assert record.state == "JOB_STATE_CANCELLED" and record.resource["error"]["code"] == 1
