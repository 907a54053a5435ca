"""Which calls retry: reads, lists, cancels and generateContent do; create never does.

The server here stands in for Vertex AI answering 503 / 429 (the local service does not fail on
purpose): it fails the first calls of each route, then answers as Vertex does.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.genai import errors

from gemini_tuning.hooks import tuning
from gemini_tuning.hooks.tuning import GenAITuningHook

JOB = "projects/p/locations/us-central1/tuningJobs/1"
JOB_BODY = {"name": JOB, "state": "JOB_STATE_RUNNING", "baseModel": "gemini-2.5-flash"}
ANSWER = {"candidates": [{"content": {"role": "model", "parts": [{"text": "billing"}]}, "finishReason": "STOP"}]}


class FlakyVertex(ThreadingHTTPServer):
    """Answers each route with `failures` errors (status `code`) before the real answer."""

    def __init__(self, failures: int, code: int = 503):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures = failures
        self.code = code
        self.calls: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _answer(self, route: str, body: dict) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: FlakyVertex = self.server  # type: ignore[assignment]
        server.calls[route] += 1
        if server.calls[route] <= server.failures:
            status = server.code
            body = {"error": {"code": server.code, "message": "try later", "status": "UNAVAILABLE"}}
        else:
            status = 200
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if "tuningJobs/" in self.path:
            self._answer("get", JOB_BODY)
        else:
            self._answer("list", {"tuningJobs": [JOB_BODY]})

    def do_POST(self):
        if self.path.endswith(":cancel"):
            self._answer("cancel", {})
        elif ":generateContent" in self.path:
            self._answer("generate", ANSWER)
        else:
            self._answer("create", JOB_BODY)


@pytest.fixture
def flaky(monkeypatch, request):
    failures, code = request.param
    server = FlakyVertex(failures, code)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_GEMINI_TUNING_DEFAULT",
        json.dumps({"conn_type": "google_cloud_platform", "password": "t",
                    "extra": {"project": "p", "location": "us-central1", "base_url": server.url}}),
    )
    monkeypatch.setattr(tuning, "RETRY_INITIAL_DELAY_SECONDS", 0.01)
    monkeypatch.setattr(tuning, "RETRY_MAX_DELAY_SECONDS", 0.02)
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("flaky", [(2, 503), (2, 429)], indirect=True, ids=["503", "429"])
def test_reads_lists_cancels_and_generate_retry_transient_errors(flaky):
    hook = GenAITuningHook()
    assert hook.get_tuning_job(JOB).name == JOB
    assert [job.name for job in hook.list_tuning_jobs()] == [JOB]
    hook.cancel_tuning_job(JOB)
    assert hook.generate_content(model="gemini-2.5-flash", contents="hi").text == "billing"
    assert flaky.calls == {"get": 3, "list": 3, "cancel": 3, "generate": 3}


@pytest.mark.parametrize("flaky", [(1, 503)], indirect=True)
def test_create_makes_exactly_one_attempt(flaky):
    with pytest.raises(errors.ServerError):
        GenAITuningHook().create_tuning_job(base_model="gemini-2.5-flash", training_dataset_uri="gs://b/t.jsonl")
    assert flaky.calls == {"create": 1}


@pytest.mark.parametrize("flaky", [(10, 503)], indirect=True)
def test_retries_are_bounded(flaky):
    with pytest.raises(errors.ServerError):
        GenAITuningHook().get_tuning_job(JOB)
    assert flaky.calls["get"] == tuning.RETRY_ATTEMPTS
