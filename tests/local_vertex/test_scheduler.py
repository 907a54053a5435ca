"""Recovery of the jobs a stopped service left active, straight against the store."""

from __future__ import annotations

from include.local_vertex.config import ServiceConfig
from include.local_vertex.scheduler import Scheduler
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
