"""The console's API under a real Airflow: who gets in, what an action needs, how errors read.

Airflow runs with real logins here (not all-admins mode), so a request without the user's token
really is anonymous; the tuning jobs live on the session's local service.
"""

from __future__ import annotations

import pytest

from tests.console.conftest import CONSOLE

pytestmark = pytest.mark.slow

ACTION = {"X-Requested-By": "test"}


@pytest.fixture(scope="module")
def token(console_airflow) -> str:
    return console_airflow.token()


@pytest.fixture(scope="module")
def running_job(console_airflow) -> str:
    """A job that trains long enough to be cancelled by the last test of this module."""
    name = console_airflow.create_job("api-long", examples=64, epochs=50)
    console_airflow.service.wait_for_state(name, {"JOB_STATE_RUNNING"}, timeout_s=120)
    return name.rsplit("/", 1)[-1]


def test_every_api_route_answers_401_without_the_airflow_token(console_airflow, running_job):
    with console_airflow.client() as anonymous:
        for method, path in [("GET", "/api/config"), ("GET", "/api/jobs"), ("GET", f"/api/jobs/{running_job}"),
                             ("GET", f"/api/jobs/{running_job}/metrics"),
                             ("POST", f"/api/jobs/{running_job}/cancel"), ("POST", f"/api/jobs/{running_job}/try")]:
            response = anonymous.request(method, CONSOLE + path, headers=ACTION)
            assert response.status_code == 401, (method, path, response.text)
            assert "Log in to Airflow" in response.json()["error"]
    with console_airflow.client("not-a-token") as forged:
        assert forged.get(CONSOLE + "/api/jobs").status_code == 401
    # The page itself is static and holds nothing: it loads, and asks the user to log in.
    with console_airflow.client() as anonymous:
        assert anonymous.get(CONSOLE + "/").status_code == 200


def test_the_ui_cookie_and_the_bearer_token_both_authenticate(console_airflow, token, running_job):
    with console_airflow.client(token) as client:
        listing = client.get(CONSOLE + "/api/jobs").json()
    assert running_job in [job["id"] for job in listing["jobs"]]
    with console_airflow.client() as browser:
        browser.cookies.set("_token", token)
        job = browser.get(f"{CONSOLE}/api/jobs/{running_job}").json()
    assert job["console"]["state"] == "JOB_STATE_RUNNING"
    assert job["supervisedTuningSpec"]["hyperParameters"]["epochCount"] == 50


def test_backend_errors_come_back_as_messages(console_airflow, token):
    with console_airflow.client(token) as client:
        missing = client.get(CONSOLE + "/api/jobs/123456789")
        bad_filter = client.get(CONSOLE + "/api/jobs", params={"label": "Bad Label!"})
        bad_page = client.get(CONSOLE + "/api/jobs", params={"page": "garbage"})
    assert missing.status_code == 404
    assert "tuningJobs/123456789 not found" in missing.json()["error"]
    assert bad_filter.status_code == 400 and "label must be key or key=value" in bad_filter.json()["error"]
    assert bad_page.status_code == 400 and "not a page token" in bad_page.json()["error"]


def test_cancel_is_refused_as_a_get_or_without_the_action_header(console_airflow, token, running_job):
    cancel = f"{CONSOLE}/api/jobs/{running_job}/cancel"
    with console_airflow.client(token) as client:
        assert client.get(cancel).status_code == 405
    with console_airflow.client() as browser:  # what a form on another site would send: the cookie only
        browser.cookies.set("_token", token)
        refused = browser.post(cancel)
        assert refused.status_code == 403 and "X-Requested-By" in refused.json()["error"]
        assert browser.get(f"{CONSOLE}/api/jobs/{running_job}").json()["console"]["state"] == "JOB_STATE_RUNNING"
        accepted = browser.post(cancel, headers=ACTION)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"] in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")
    console_airflow.service.wait_for_state(f"{console_airflow.service.parent}/tuningJobs/{running_job}",
                                           {"JOB_STATE_CANCELLED"}, timeout_s=120)


def test_the_plugin_adds_the_console_to_the_navigation(console_airflow, token):
    with console_airflow.client(token) as client:
        plugins = client.get("/api/v2/plugins").json()["plugins"]
    [plugin] = [p for p in plugins if p["name"] == "gemini_tuning"]
    [view] = plugin["external_views"]
    assert (view["name"], view["url_route"], view["destination"]) == ("Gemini tuning", "gemini-tuning", "nav")
    assert [app["url_prefix"] for app in plugin["fastapi_apps"]] == [CONSOLE]
