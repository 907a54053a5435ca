"""generateContent in its own process: a crash there fails only its requests, concurrent
requests are batched and answered as one at a time would be, and the queue and the time-out
answer in Google's error shape."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fixtures.local_vertex import LocalVertexService, chat_rows

pytestmark = pytest.mark.slow
BASE_MODEL = "publishers/google/models/gemini-2.5-flash"  # the untuned tiny model: it rarely stops early


def ask(text: str, max_tokens: int) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}],
            "generationConfig": {"temperature": 0, "maxOutputTokens": max_tokens}}


def generate(service, body: dict, target: str = BASE_MODEL):
    with service.http(timeout=300) as http:
        return http.post(f"/v1/{service.parent}/{target}:generateContent", json=body)


def generation_pid(service) -> int:
    """The service's generation process (a child of the service named for its module)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent == service.proc.pid and b"include.local_vertex.generation" in argv:
            return int(stat.parent.name)
    raise AssertionError(f"no generation process:\n{service.log_tail()}")


def wait_for_log(service, text: str, count: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while service.log_path.read_text(errors="replace").count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged {count} times:\n{service.log_tail()}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def service(tmp_path_factory, local_vertex_tiny_model):
    # In the default precision: bf16 where the CPU has bf16 instructions, whose rounding once
    # made a batched answer differ from the same request alone.
    service = LocalVertexService(tmp_path_factory.mktemp("generation") / "data", local_vertex_tiny_model).start()
    yield service
    service.stop()


def decoded_lines(service) -> list[str]:
    return [line for line in service.log_path.read_text().splitlines() if "generation: decoded request " in line]


def test_concurrent_requests_are_batched_and_answered_as_one_at_a_time(service):
    def answer(body: dict) -> dict:
        response = generate(service, body).json()
        return {key: response[key] for key in ("candidates", "usageMetadata", "modelVersion")}  # not the ids

    prompts = [ask(f"message {i}: my billing question", 12) for i in range(8)]
    before = len(decoded_lines(service))
    alone = [answer(body) for body in prompts]
    one_at_a_time = decoded_lines(service)[before:]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(answer, prompts))
    concurrent = decoded_lines(service)[before + 8:]
    assert together == alone
    # each request's rows, tokens, time and the largest batch it was decoded in are in the log
    assert len(one_at_a_time) == 8 and all("(1 rows, 12 tokens) in " in line for line in one_at_a_time)
    assert all(line.endswith("in a batch of up to 1 rows") for line in one_at_a_time)
    largest = [int(line.rsplit("up to ", 1)[1].split()[0]) for line in concurrent]
    assert len(largest) == 8 and max(largest) > 1  # decoded together (how many at once depends on arrival)


def test_a_killed_generation_process_fails_its_requests_and_nothing_else(service):
    with service.http() as http:
        job = http.post(f"/v1/{service.parent}/tuningJobs", json={
            "baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {
                "trainingDatasetUri": service.write_dataset("long.jsonl", chat_rows(80)),
                "hyperParameters": {"epochCount": 100}}}).json()
    series = f"/v1/{job['experiment']}/runs/train/timeSeries/train_total_loss:read"

    def steps() -> int:
        with service.http() as http:
            return len(http.get(series).json()["timeSeriesData"]["values"])

    deadline = time.monotonic() + 120
    while steps() == 0:
        assert time.monotonic() < deadline, service.log_tail()
        time.sleep(0.1)

    assert generate(service, ask("warm up", 2)).status_code == 200
    pid = generation_pid(service)
    seen = service.log_path.read_text().count("generation: decoding request ")
    # One request: a second one could still be on its way when the process dies, and then a fresh
    # process would rightly answer it.
    with ThreadPoolExecutor(1) as pool:
        in_flight = [pool.submit(generate, service, ask("long answer", 900))]
        wait_for_log(service, "generation: decoding request ", seen + 1)  # it is decoding it now
        os.kill(pid, signal.SIGKILL)
        failed = [future.result() for future in in_flight]
    for response in failed:
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["status"] == "UNAVAILABLE" and "generation process killed by SIGKILL" in error["message"]

    steps_at_crash = steps()
    again = generate(service, ask("hello again", 3))  # a fresh process answers
    assert again.status_code == 200 and again.json()["candidates"][0]["content"]["parts"][0]["text"] is not None
    assert generation_pid(service) != pid
    deadline = time.monotonic() + 120
    while steps() <= steps_at_crash:  # the training went on throughout
        assert time.monotonic() < deadline, service.log_tail()
        time.sleep(0.1)
    with service.http() as http:
        assert http.get(f"/v1/{job['name']}").json()["state"] == "JOB_STATE_RUNNING"
        http.post(f"/v1/{job['name']}:cancel")
    service.wait_for_state(job["name"], {"JOB_STATE_CANCELLED"}, timeout_s=60)


def test_the_queue_is_bounded_and_a_slow_request_gets_deadline_exceeded(tmp_path, local_vertex_tiny_model):
    service = LocalVertexService(tmp_path / "data", local_vertex_tiny_model,
                                 extra_args=("--generation-timeout", "1", "--generation-max-queue", "2")).start()
    try:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda i: generate(service, ask(f"long {i}", 900)), range(6)))
        statuses = sorted(response.status_code for response in answers)
        assert set(statuses) == {429, 504}, [response.text for response in answers]
        for response in answers:
            error = response.json()["error"]
            expected = {429: "RESOURCE_EXHAUSTED", 504: "DEADLINE_EXCEEDED"}[response.status_code]
            assert set(error) == {"code", "message", "status"} and error["status"] == expected
            assert error["code"] == response.status_code
    finally:
        service.stop()
