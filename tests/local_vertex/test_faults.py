"""Faults against a private service: a worker killed -9, the service stopped or killed mid-job,
cancel while queued and while running, two jobs with concurrency 1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import httpx
import pytest

from include.local_vertex.processes import pid_alive
from include.tuning_engine.recommended import recommended_schedule
from tests.fixtures.local_vertex import PROJECT_ROOT, LocalVertexService, chat_rows

pytestmark = pytest.mark.slow
# 80 examples x 100 epochs: a checkpoint per epoch and a few thousand steps in all, which take a
# tiny model seconds on an idle machine and minutes on a busy one. The tests act on the job as
# soon as it reaches a step, then cancel it, so their length does not depend on the pace. The
# steps per epoch follow the service's own batch-size rule.
LONG_EXAMPLES = 80
LONG = {"epochCount": 100}
STEPS_PER_EPOCH = recommended_schedule(LONG_EXAMPLES, epoch_count=100).steps_per_epoch
ENDED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"}


@pytest.fixture(scope="module")
def service(tmp_path_factory, local_vertex_tiny_model):
    service = LocalVertexService(tmp_path_factory.mktemp("faults") / "data", local_vertex_tiny_model,
                                 cancel_grace_s=3.0).start()
    service.long_uri = service.write_dataset("long.jsonl", chat_rows(LONG_EXAMPLES))
    service.short_uri = service.write_dataset("short.jsonl", chat_rows(16))
    yield service
    service.stop()


def create(service, uri: str, **hyper) -> dict:
    body = {"baseModel": "gemini-2.5-flash",
            "supervisedTuningSpec": {"trainingDatasetUri": uri, "hyperParameters": {"epochCount": 1, **hyper}}}
    with service.http() as http:
        response = http.post(f"/v1/{service.parent}/tuningJobs", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def get(service, name: str) -> dict:
    with service.http() as http:
        return http.get(f"/v1/{name}").json()


def train_steps(service, job: dict) -> list[int]:
    with service.http() as http:
        data = http.get(f"/v1/{job['experiment']}/runs/train/timeSeries/train_total_loss:read").json()
    return [int(point["step"]) for point in data["timeSeriesData"]["values"]]


def wait_for_steps(service, job: dict, at_least: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(train_steps(service, job)) < at_least:
        state = get(service, job["name"])["state"]
        assert state not in ENDED, f"job ended ({state}) before step {at_least}"
        assert time.monotonic() < deadline, f"no step {at_least} after {timeout_s:.0f}s:\n{service.log_tail()}"
        time.sleep(0.05)


def worker_pid(service, job: dict) -> int:
    job_id = job["name"].rsplit("/", 1)[1]
    return httpx.get(service.base_url + "/healthz").json()["workers"][job_id]


def wait_gone(pid: int, timeout_s: float = 15.0) -> float:
    started = time.monotonic()
    while pid_alive(pid):
        assert time.monotonic() - started < timeout_s, f"process {pid} still alive"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_second_service_on_the_same_data_dir_is_refused(service):
    other = LocalVertexService(service.data_dir, service.base_model)
    done = subprocess.run(other.command(), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "already using" in done.stderr


def test_a_worker_killed_with_sigkill_fails_its_job_with_the_reason(service):
    job = create(service, service.long_uri, **LONG)
    wait_for_steps(service, job, 1)
    os.kill(worker_pid(service, job), signal.SIGKILL)
    failed = service.wait_for_state(job["name"], ENDED, timeout_s=30)
    assert failed["state"] == "JOB_STATE_FAILED"
    assert failed["error"]["code"] == 13 and "SIGKILL" in failed["error"]["message"]
    assert "endTime" in failed


def test_cancel_while_queued_and_while_running(service):
    client = service.genai_client()
    running = create(service, service.long_uri, **LONG)
    queued = create(service, service.short_uri)
    assert get(service, queued["name"])["state"] == "JOB_STATE_QUEUED"  # concurrency 1
    wait_for_steps(service, running, 1)

    client.tunings.cancel(name=queued["name"])
    cancelled = get(service, queued["name"])
    assert cancelled["state"] == "JOB_STATE_CANCELLED"
    assert "startTime" not in cancelled and cancelled["error"]["code"] == 1

    pid = worker_pid(service, running)
    asked = time.monotonic()
    client.tunings.cancel(name=running["name"])
    ended = service.wait_for_state(running["name"], ENDED, timeout_s=15)
    assert ended["state"] == "JOB_STATE_CANCELLED"
    assert time.monotonic() - asked < 10
    wait_gone(pid)  # its memory is freed with the process
    total = int(ended["tuningDataStats"]["supervisedTuningDataStats"]["tuningStepCount"])
    assert len(train_steps(service, running)) < total

    from google.genai import errors
    with pytest.raises(errors.ClientError) as raised:
        client.tunings.cancel(name=running["name"])
    assert raised.value.status == "FAILED_PRECONDITION"


def test_two_jobs_at_once_run_one_after_the_other(service):
    first = create(service, service.short_uri)
    second = create(service, service.short_uri)
    assert get(service, second["name"])["state"] == "JOB_STATE_QUEUED"
    first = service.wait_for_state(first["name"], ENDED)
    second = service.wait_for_state(second["name"], ENDED)
    assert first["state"] == second["state"] == "JOB_STATE_SUCCEEDED"
    assert second["startTime"] >= first["endTime"]


def test_a_service_stopped_mid_job_resumes_it_after_restart(service):
    job = create(service, service.long_uri, **LONG)
    wait_for_steps(service, job, STEPS_PER_EPOCH + 2)  # past the first epoch's checkpoint
    pid = worker_pid(service, job)
    assert service.stop() == 0
    assert not pid_alive(pid)
    with pytest.raises(httpx.HTTPError):
        httpx.get(service.storage_url + "/", timeout=2)
    assert get_state_offline(service, job) in ("JOB_STATE_RUNNING", "JOB_STATE_PENDING")

    service.start()
    assert_resumes_from_a_checkpoint(service, job)


def test_a_service_killed_mid_job_leaves_no_orphans_and_resumes(service):
    job = create(service, service.long_uri, **LONG)
    wait_for_steps(service, job, STEPS_PER_EPOCH + 2)
    pid = worker_pid(service, job)
    service.kill()  # SIGKILL: no clean-up code runs in the service
    wait_gone(pid)
    deadline = time.monotonic() + 15
    while True:  # the storage emulator goes too
        try:
            httpx.get(service.storage_url + "/", timeout=1)
        except httpx.HTTPError:
            break
        assert time.monotonic() < deadline, "storage emulator outlived the service"
        time.sleep(0.1)
    assert get_state_offline(service, job) == "JOB_STATE_RUNNING"

    service.start()
    assert_resumes_from_a_checkpoint(service, job)


def assert_resumes_from_a_checkpoint(service, job: dict) -> None:
    """The job runs again, from an epoch checkpoint rather than step 0, then is cancelled."""
    log = service.data_dir / "jobs" / job["name"].rsplit("/", 1)[1] / "worker.log"
    steps_before = len(train_steps(service, job))
    deadline = time.monotonic() + 120
    while "resumed at epoch" not in log.read_text():
        assert get(service, job["name"])["state"] not in ENDED
        assert time.monotonic() < deadline, f"the job did not resume:\n{service.log_tail()}"
        time.sleep(0.1)
    wait_for_steps(service, job, steps_before + 1)
    resumed = re.findall(r"resumed at epoch (\d+), step (\d+)", log.read_text())[-1]
    assert int(resumed[0]) >= 1 and int(resumed[1]) >= STEPS_PER_EPOCH
    client = service.genai_client()  # keep a reference: a collected genai Client closes its connection
    client.tunings.cancel(name=job["name"])
    assert service.wait_for_state(job["name"], ENDED, timeout_s=30)["state"] == "JOB_STATE_CANCELLED"


def get_state_offline(service, job: dict) -> str:
    """The job's state straight from the store, while the service is down."""
    from include.local_vertex.store import JobStore

    store = JobStore(service.data_dir / "jobs.sqlite")
    try:
        return store.get(job["name"].rsplit("/", 1)[1]).state
    finally:
        store.close()


def test_a_service_stopped_before_training_began_leaves_the_job_to_resume(service):
    """A stop in a phase without training steps (here: tokenizing a large file) fails nothing,
    even when it lasts longer than a worker is given to stop, and spends no resume."""
    job = create(service, service.write_dataset("large.jsonl", chat_rows(8000)))
    job_id = job["name"].rsplit("/", 1)[1]
    log = service.data_dir / "jobs" / job_id / "worker.log"
    deadline = time.monotonic() + 120
    while not (log.exists() and "tokenizing the tuning data" in log.read_text()):
        assert time.monotonic() < deadline, f"the worker did not start tokenizing:\n{service.log_tail()}"
        time.sleep(0.05)
    assert service.stop() == 0

    from include.local_vertex.store import JobStore

    store = JobStore(service.data_dir / "jobs.sqlite")
    try:
        record = store.get(job_id)
        assert record.state == "JOB_STATE_RUNNING" and record.internal["stoppedCleanly"], record.resource
    finally:
        store.close()
    assert "stopped by a signal" in log.read_text()

    service.start()
    started_again = log.read_text().count("tokenizing the tuning data") + 1
    deadline = time.monotonic() + 120
    while log.read_text().count("tokenizing the tuning data") < started_again:
        assert get(service, job["name"])["state"] not in ENDED
        assert time.monotonic() < deadline, f"the job did not start again:\n{service.log_tail()}"
        time.sleep(0.1)
    client = service.genai_client()
    client.tunings.cancel(name=job["name"])
    assert service.wait_for_state(job["name"], ENDED, timeout_s=60)["state"] == "JOB_STATE_CANCELLED"
    store = JobStore(service.data_dir / "jobs.sqlite")
    try:
        assert store.get(job_id).resume_count == 0  # a clean stop is no crash
    finally:
        store.close()
