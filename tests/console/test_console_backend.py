"""The console's backend calls against the real local service, in-process: paging, search, errors."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gemini_tuning.console import backend
from gemini_tuning.console.api import error_body
from gemini_tuning.jobs import DEFAULT_CONN_ID
from tests.fixtures.local_vertex import chat_rows, free_port

CONN_ENV = f"AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}"


def connection(base_url: str, token: str) -> str:
    return json.dumps({"conn_type": "google_cloud_platform", "password": token,
                       "extra": {"project": "local-project", "location": "us-central1", "base_url": base_url}})


@pytest.fixture
def console_connection(local_vertex, monkeypatch):
    monkeypatch.setenv(CONN_ENV, connection(local_vertex.base_url, local_vertex.token))
    return local_vertex


@pytest.fixture(scope="module")
def cancelled_jobs(local_vertex):
    """Five jobs named pager-0..4 (two labelled team=pager), cancelled while queued: nothing trains."""
    service = local_vertex
    train = service.write_dataset("pager-train.jsonl", chat_rows(8))
    names = []
    with service.http() as http:
        for i in range(5):
            body = {"baseModel": "gemini-2.5-flash", "tunedModelDisplayName": f"pager-{i}",
                    "labels": {"team": "pager"} if i % 2 else {},
                    "supervisedTuningSpec": {"trainingDatasetUri": train}}
            name = http.post(f"/v1/{service.parent}/tuningJobs", json=body).raise_for_status().json()["name"]
            http.post(f"/v1/{name}:cancel")
            names.append(name)
    for name in names:
        service.wait_for_state(name, {"JOB_STATE_CANCELLED"})
    return names


def test_search_pages_through_every_match_once(console_connection, cancelled_jobs):
    hook = backend.hook()
    seen, cursor = [], None
    for _ in range(5):
        page = backend.jobs_page(hook, search="PAGER-", page_size=2, cursor=cursor)
        assert len(page["jobs"]) <= 2
        seen += [job["displayName"] for job in page["jobs"]]
        if not (cursor := page["next"]):
            break
    assert sorted(seen) == [f"pager-{i}" for i in range(5)]  # newest first, none twice, none skipped
    assert seen == sorted(seen, reverse=True)


def test_state_and_label_filters_reach_the_backend(console_connection, cancelled_jobs):
    hook = backend.hook()
    labelled = backend.jobs_page(hook, label="team=pager", search="pager-", page_size=50)
    assert sorted(job["displayName"] for job in labelled["jobs"]) == ["pager-1", "pager-3"]
    has_label = backend.jobs_page(hook, label="team", search="pager-", page_size=50)
    assert len(has_label["jobs"]) == 2
    cancelled = backend.jobs_page(hook, state="JOB_STATE_CANCELLED", search="pager-", page_size=50)
    assert {job["state"] for job in cancelled["jobs"]} == {"JOB_STATE_CANCELLED"} and len(cancelled["jobs"]) == 5
    with pytest.raises(backend.BadRequest, match="state must be one of"):
        backend.jobs_page(hook, state="RUNNING")


def test_try_settings_are_checked_against_the_guides_ranges():
    assert backend.generation_config({}) == {"temperature": 1.0, "topP": 0.95, "topK": 40, "maxOutputTokens": 8192}
    with pytest.raises(backend.BadRequest, match="Temperature must be between 0 and 2"):
        backend.generation_config({"temperature": 3})
    with pytest.raises(backend.BadRequest, match="Top-K must be a whole number"):
        backend.generation_config({"topK": 2.5})


def test_a_backend_that_is_down_reads_as_not_reachable(monkeypatch):
    monkeypatch.setenv(CONN_ENV, connection(f"http://127.0.0.1:{free_port()}", "token"))
    with pytest.raises(Exception) as caught:
        backend.jobs_page(backend.hook())
    status, message = error_body(caught.value)
    assert status == 503, message
    assert message.startswith("The tuning backend is not reachable")


def test_a_missing_connection_reads_as_such(monkeypatch):
    monkeypatch.delenv(CONN_ENV, raising=False)
    with pytest.raises(Exception) as caught:
        backend.jobs_page(backend.hook())
    status, message = error_body(caught.value)
    assert status == 503 and DEFAULT_CONN_ID in message, message


class _StreamingVertex(BaseHTTPRequestHandler):
    """Stands in for Vertex AI's streamGenerateContent (SSE, as google-genai asks with alt=sse)."""

    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "ship"}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "ping"}]}, "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2, "totalTokenCount": 9}},
    ]
    requests: list[str] = []

    def do_POST(self):  # noqa: N802 - the http.server name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for chunk in self.chunks:
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
            self.wfile.flush()

    def log_message(self, *args):
        pass


def test_try_streams_where_the_backend_streams(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StreamingVertex)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv(CONN_ENV, connection(f"http://127.0.0.1:{server.server_port}", "token"))
        events = list(backend.answer_events(backend.hook(for_reads=False), model="gemini-2.5-flash",
                                            prompt="my parcel is late", system_instruction=None, settings={}))
    finally:
        server.shutdown()
    assert [e["text"] for e in events if "text" in e] == ["ship", "ping"]
    done = events[-1]["done"]
    assert done["streamed"] is True and done["finishReason"] == "STOP"
    assert (done["promptTokens"], done["answerTokens"]) == (7, 2)
    assert _StreamingVertex.requests[0].endswith("models/gemini-2.5-flash:streamGenerateContent?alt=sse")


def test_try_answers_from_the_local_service_streamed_or_not(console_connection):
    """Without streamGenerateContent (404) one generateContent call answers, its text in one chunk."""
    events = list(backend.answer_events(backend.hook(for_reads=False), model="gemini-2.5-flash",
                                        prompt="message 1: my billing question", system_instruction="Classify.",
                                        settings={"maxOutputTokens": 4, "temperature": 0}))
    done = events[-1]["done"]
    assert done["answerTokens"] and done["promptTokens"] and done["totalMs"] >= 0
    if not done["streamed"]:
        assert len([e for e in events if "text" in e]) <= 1
