"""Failures inside the service: a 500 tells the client nothing of the exception (the log has
it); page tokens a client made up are a 400."""

from __future__ import annotations

import base64
import logging

from starlette.testclient import TestClient

from include.local_vertex.api import create_app
from include.local_vertex.config import ServiceConfig


class BrokenStore:
    def get(self, job_id):
        raise RuntimeError("disk I/O error in /srv/secret/jobs.sqlite")

    def newest_first(self, *args, **kwargs):
        return iter(())


def client() -> TestClient:
    app = create_app(ServiceConfig(token="t"), BrokenStore(), None, None, storage_alive=lambda: True)
    return TestClient(app, raise_server_exceptions=False, headers={"Authorization": "Bearer t"})


def test_a_500_carries_no_exception_text_and_the_log_has_it(caplog):
    with caplog.at_level(logging.ERROR, logger="include.local_vertex.api"):
        response = client().get("/v1/projects/p/locations/l/tuningJobs/1")
    assert response.status_code == 500
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (500, "INTERNAL")
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert "/srv/secret/jobs.sqlite" in caplog.text and "GET /v1/projects/p/locations/l/tuningJobs/1" in caplog.text


def test_a_page_token_beyond_any_row_is_a_400():
    token = base64.urlsafe_b64encode(b"before:" + b"9" * 30).decode().rstrip("=")
    response = client().get("/v1/projects/p/locations/l/tuningJobs", params={"pageToken": token})
    assert response.status_code == 400 and "pageToken" in response.json()["error"]["message"]
