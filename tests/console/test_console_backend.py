"""The console's backend calls against the real local service, in-process: paging, search, errors."""

from __future__ import annotations

import json

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


@pytest.fixture
def cancelled_jobs(console_connection):
    """Five jobs named pager-0..4 (two labelled team=pager), cancelled while queued: nothing trains."""
    service = console_connection
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


def test_search_pages_through_every_match_once(cancelled_jobs):
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


def test_state_and_label_filters_reach_the_backend(cancelled_jobs):
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
