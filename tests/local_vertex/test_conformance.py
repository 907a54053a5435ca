"""Every route the local service serves, checked against Google's own definitions of the API
(see conformance.py): success and error answers, for a running, a succeeded, a failed and a
cancelled job; and every request the project's hook sends, recorded on its way to the service.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import httpx
import pytest

from tests.fixtures.local_vertex import chat_rows
from tests.local_vertex.conformance import answer_problems, path_pattern, request_problems

pytestmark = pytest.mark.slow

PROMPT = {"contents": [{"role": "user", "parts": [{"text": "message 1: my technical question"}]}],
          "generationConfig": {"temperature": 0, "maxOutputTokens": 4}}


class Exchanges:
    """Sends requests to the service and checks each answer as it comes."""

    def __init__(self, http: httpx.Client):
        self.http = http
        self.checked: list[tuple[str, str, int, str]] = []  # method, path, status, what it was checked as
        self.problems: list[str] = []

    def __call__(self, method: str, path: str, expect: int = 200, client: httpx.Client | None = None, **kwargs):
        response = (client or self.http).request(method, path, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text[:300]}"
        what, problems = answer_problems(method, path, response.status_code, response.content,
                                         response.headers.get("content-type", ""))
        self.checked.append((method, path, response.status_code, what))
        self.problems += [f"{method} {path} ({response.status_code}): {problem}" for problem in problems]
        return response.json() if "json" in response.headers.get("content-type", "") else response


def _job_body(uri: str, **extra) -> dict:
    return {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": uri, **extra}}


@pytest.fixture(scope="module")
def exchanges(local_vertex):
    parent = f"/v1/{local_vertex.parent}"
    with local_vertex.http() as http:
        call = Exchanges(http)
        small = local_vertex.write_dataset("conformance-small.jsonl", chat_rows(8))
        broken = local_vertex.write_dataset("conformance-broken.jsonl",
                                            [{"contents": [{"role": "user", "parts": [{"text": "no answer"}]}]}] * 4)
        large = local_vertex.write_dataset("conformance-large.jsonl", chat_rows(64))

        # A succeeded job, with every field a create request may carry, and a failed one.
        succeeded = call("POST", f"{parent}/tuningJobs", json=_job_body(
            small, validationDatasetUri=small, hyperParameters={"epochCount": "1", "adapterSize": "ADAPTER_SIZE_TWO",
                                                                 "learningRateMultiplier": 2},
            exportLastCheckpointOnly=True) | {
            "tunedModelDisplayName": "conformance", "description": "all fields", "labels": {"suite": "conformance"},
            "serviceAccount": "tuner@p.iam.gserviceaccount.com",
            "encryptionSpec": {"kmsKeyName": "projects/p/locations/us-central1/keyRings/r/cryptoKeys/k"}})
        failed = call("POST", f"{parent}/tuningJobs", json=_job_body(broken, hyperParameters={"epochCount": 1}))
        for job in (succeeded, failed):
            local_vertex.wait_for_state(job["name"], {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})
        succeeded = call("GET", f"/v1/{succeeded['name']}")
        failed = call("GET", f"/v1/{failed['name']}")
        assert (succeeded["state"], failed["state"]) == ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED")
        assert succeeded["serviceAccount"] == "tuner@p.iam.gserviceaccount.com"  # accepted, kept, returned
        assert succeeded["encryptionSpec"]["kmsKeyName"].endswith("/cryptoKeys/k")

        # A running job, then cancelled.
        running = call("POST", f"{parent}/tuningJobs", json=_job_body(large, hyperParameters={"epochCount": 50}))
        local_vertex.wait_for_state(running["name"], {"JOB_STATE_RUNNING"})
        call("GET", f"/v1/{running['name']}")
        call("GET", f"{parent}/tuningJobs", params={"pageSize": 1})
        call("GET", f"/v1beta1/{local_vertex.parent}/tuningJobs", params={"filter": 'labels.suite="conformance"'})
        call("POST", f"/v1/{running['name']}:cancel", json={})
        local_vertex.wait_for_state(running["name"], {"JOB_STATE_CANCELLED"})
        call("GET", f"/v1/{running['name']}")
        call("GET", f"{parent}/tuningJobs")

        # The model calls, on the tuned endpoint and on a publisher model.
        for model in (succeeded["tunedModel"]["endpoint"], f"{local_vertex.parent}/publishers/google/models/gemini-2.5-pro"):
            for version in ("v1", "v1beta1"):
                call("POST", f"/{version}/{model}:generateContent", json=PROMPT)
            call("POST", f"/v1/{model}:streamGenerateContent", json=PROMPT, params={"alt": "sse"})
            call("POST", f"/v1/{model}:streamGenerateContent", json=PROMPT)
            call("POST", f"/v1/{model}:countTokens", json=PROMPT | {"generationConfig": {}})
            call("POST", f"/v1/{model}:computeTokens", json={"contents": PROMPT["contents"]})
            call("POST", f"/v1/{model}:generateContent", 400, json=PROMPT | {"tools": [{}]})
            call("POST", f"/v1/{model}:countTokens", 400, json={"contents": []})

        # Metrics and the tuned model.
        experiment = succeeded["experiment"]
        tensorboard = experiment.split("/experiments/")[0]
        call("GET", f"/v1/{experiment}")
        call("GET", f"/v1/{experiment}/runs")
        series = call("GET", f"/v1/{experiment}/runs/train/timeSeries")["tensorboardTimeSeries"]
        call("GET", f"/v1/{experiment}/runs/train/timeSeries/train_total_loss:read")
        call("GET", f"/v1/{tensorboard}:batchRead", params=[("timeSeries", s["name"]) for s in series])
        call("GET", f"/v1/{experiment}/runs/train/timeSeries:batchRead")
        call("GET", f"/v1/{succeeded['tunedModel']['model']}")
        call("GET", f"/v1/{succeeded['tunedModel']['model'].split('@')[0]}")
        [checkpoint] = succeeded["tunedModel"]["checkpoints"]  # exportLastCheckpointOnly: the last only
        call("POST", f"/v1/{checkpoint['endpoint']}:generateContent", json=PROMPT)
        call("PATCH", f"/v1/{succeeded['tunedModel']['model']}", params={"updateMask": "defaultCheckpointId"},
             json={"defaultCheckpointId": checkpoint["checkpointId"]})

        # Errors.
        call("GET", f"{parent}/tuningJobs/123", 404)
        call("GET", f"{parent}/tuningJobs", 400, params={"filter": "colour=red"})
        call("GET", f"{parent}/tuningJobs", 400, params={"pageSize": "x"})
        call("POST", f"{parent}/tuningJobs", 400, json={"baseModel": "gemini-2.5-pro", "supervisedTuningSpec": {
            "trainingDatasetUri": small, "hyperParameters": {"adapterSize": "ADAPTER_SIZE_SIXTEEN"}}})
        call("POST", f"{parent}/tuningJobs", 400, content=b"{not json")
        call("POST", f"{parent}/tuningJobs", 413, content=b" " * (9 * 1024 * 1024))
        call("POST", f"/v1/{succeeded['name']}:cancel", 400)
        call("GET", f"{parent}/tuningJobs", 401, client=httpx.Client(base_url=local_vertex.base_url))
        call("GET", f"{parent}/datasets", 404)
        call("DELETE", f"/v1/{succeeded['name']}", 405)
        call("POST", f"/v1/{failed['tunedModel']['endpoint'] if 'tunedModel' in failed else failed['name'].replace('tuningJobs', 'endpoints')}:generateContent",
             404, json=PROMPT)
        call("GET", f"/v1/{failed['name'].replace('tuningJobs', 'models')}", 404)
        call("PATCH", f"/v1/{succeeded['tunedModel']['model']}", 400, params={"updateMask": "defaultCheckpointId"},
             json={"defaultCheckpointId": "9"})
        call("GET", f"/v1/{tensorboard}:batchRead", 400)
        call("GET", f"/v1/{experiment}/runs/train/timeSeries/nope:read", 404)
        call("GET", f"/v1/{experiment}/runs/eval", 404)
        yield call, local_vertex


def test_every_answer_is_what_googles_schema_and_protobuf_types_accept(exchanges):
    call, _ = exchanges
    assert not call.problems, "\n".join(call.problems)
    counts = Counter(what for *_, what in call.checked)
    print(f"\nconformance: {len(call.checked)} answers checked "
          f"({sum(n for what, n in counts.items() if what != 'error')} successes, {counts['error']} errors) "
          f"as {len(counts) - 1} message types: {dict(sorted(counts.items()))}")


def test_every_route_served_is_exercised(exchanges):
    call, local_vertex = exchanges
    openapi = call.http.get("/openapi.json").json()
    served = {(method.upper(), path) for path, item in openapi["paths"].items() for method in item
              if path.startswith("/v1/")}
    exercised = {(method, template) for method, template in served
                 if any(m == method and path_pattern(template).match(p) for m, p, status, _ in call.checked if status < 300)}
    assert served - exercised == set()
    print(f"\nconformance: all {len(served)} routes of /v1 exercised with a success (the same router serves /v1beta1)")


def test_the_hooks_requests_are_googles(exchanges, monkeypatch):
    from gemini_tuning.hooks.tuning import GenAITuningHook
    from tests.pipeline.test_vertex_configuration import RecordingProxy

    _, local_vertex = exchanges
    uri = local_vertex.write_dataset("conformance-hook.jsonl", chat_rows(8))
    with RecordingProxy(local_vertex.base_url, local_vertex.token) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_CONFORMANCE", json.dumps({
            "conn_type": "google_cloud_platform", "password": local_vertex.token,
            "extra": {"project": local_vertex.project, "location": local_vertex.location, "base_url": proxy.url}}))
        hook = GenAITuningHook(gcp_conn_id="conformance")
        job = hook.create_tuning_job(base_model="gemini-2.5-flash", training_dataset_uri=uri,
                                     validation_dataset_uri=uri, tuned_model_display_name="hook", description="d",
                                     epoch_count=1, adapter_size="ADAPTER_SIZE_FOUR", learning_rate_multiplier=1.0,
                                     labels={"suite": "conformance-hook"})
        other = hook.create_tuning_job(base_model="gemini-2.5-flash", training_dataset_uri=uri)
        hook.cancel_tuning_job(other.name)
        hook.find_tuning_jobs_by_labels({"suite": "conformance-hook"})
        done = local_vertex.wait_for_state(job.name, {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})
        job = hook.get_tuning_job(job.name)
        hook.generate_content(model=done["tunedModel"]["endpoint"], contents="hello", system_instruction="Be brief.",
                              generation_config={"temperature": 0, "maxOutputTokens": 4, "topP": 0.9, "topK": 5})
        assert hook.read_metric_series(job)
    assert not proxy.errors
    checked = [request_problems(r.method, r.path, {k: v for k, v in r.query.items()}, r.body) for r in proxy.requests]
    problems = [problem for _, found in checked for problem in found]
    assert not problems, "\n".join(problems)
    methods = Counter(method for method, _ in checked)
    assert {"aiplatform.projects.locations.tuningJobs.create", "aiplatform.projects.locations.tuningJobs.cancel",
            "aiplatform.projects.locations.tuningJobs.list", "aiplatform.projects.locations.tuningJobs.get",
            "aiplatform.projects.locations.endpoints.generateContent"} <= set(methods)
    print(f"\nconformance: {len(checked)} requests of the hook checked: {dict(sorted(methods.items()))}")


@pytest.mark.parametrize("body, words", [
    ({"state": "RUNNING"}, "is not one of"),
    ({"tuningDataStats": {"supervisedTuningDataStats": {"tuningStepCount": 12}}}, "expected a string (int64)"),
    ({"createTime": "yesterday"}, "not an RFC 3339 time"),
    ({"tunedModelName": "x"}, "no such field in GoogleCloudAiplatformV1TuningJob"),
])
def test_the_referees_catch_what_google_would_refuse(body, words):
    from tests.local_vertex.conformance import message_problems

    problems = message_problems(body, "GoogleCloudAiplatformV1TuningJob")
    assert any(words in problem for problem in problems), problems
    # protobuf's parser takes a number for an int64 on input; only the REST schema catches that answer
    assert any(problem.startswith("GoogleCloudAiplatformV1TuningJob:") for problem in problems) != ("int64" in words)
