"""The REST API over plain HTTP: the seed document's snake_case body, errors, auth, limits,
list filters and the TensorBoard time-series reads."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.fixtures.local_vertex import PROJECT_ROOT, chat_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def http(local_vertex):
    with local_vertex.http() as client:
        yield client


@pytest.fixture(scope="module")
def jobs_url(local_vertex):
    return f"/v1/{local_vertex.parent}/tuningJobs"


@pytest.fixture(scope="module")
def dataset_uri(local_vertex):
    return local_vertex.write_dataset("http-train.jsonl", chat_rows(16))


@pytest.fixture(scope="module")
def finished_job(local_vertex, http, jobs_url, dataset_uri):
    """A job created with the snake_case body of the original documentation's curl example."""
    body = {
        "baseModel": "gemini-1.0-pro-002",
        "supervisedTuningSpec": {
            "training_dataset_uri": dataset_uri,
            "validation_dataset_uri": dataset_uri,
            "hyper_parameters": {"epoch_count": 2, "adapter_size": "ADAPTER_SIZE_FOUR",
                                 "learning_rate_multiplier": 1.5},
        },
        "tunedModelDisplayName": "tuned_gemini_pro",
        "labels": {"suite": "http"},
    }
    response = http.post(jobs_url, json=body)
    assert response.status_code == 200, response.text
    return local_vertex.wait_for_state(response.json()["name"], {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})


def test_snake_case_body_of_the_documentation_creates_a_job(finished_job, dataset_uri):
    assert finished_job["state"] == "JOB_STATE_SUCCEEDED", finished_job.get("error")
    spec = finished_job["supervisedTuningSpec"]
    assert spec["trainingDatasetUri"] == dataset_uri
    assert spec["validationDatasetUri"] == dataset_uri
    assert spec["hyperParameters"] == {"epochCount": "2", "adapterSize": "ADAPTER_SIZE_FOUR",
                                       "learningRateMultiplier": 1.5}
    assert finished_job["tunedModelDisplayName"] == "tuned_gemini_pro"
    for field in ("createTime", "startTime", "endTime", "updateTime"):
        assert finished_job[field].endswith("Z")


def test_the_service_logs_each_jobs_progress(finished_job, local_vertex):
    job_id = finished_job["name"].rsplit("/", 1)[1]
    lines = [line for line in local_vertex.log_path.read_text().splitlines() if f"job {job_id}" in line]
    assert any("progress: step" in line and "epoch 2" in line and "loss" in line for line in lines)
    assert any("succeeded" in line for line in lines)


def test_metrics_read_as_tensorboard_time_series(finished_job, http):
    experiment = finished_job["experiment"]
    steps = int(finished_job["tuningDataStats"]["supervisedTuningDataStats"]["tuningStepCount"])
    series = http.get(f"/v1/{experiment}/runs/train/timeSeries").json()["tensorboardTimeSeries"]
    assert {s["displayName"] for s in series} == {
        "/train_total_loss", "/train_fraction_of_correct_next_step_preds", "/train_num_predictions",
        "/eval_total_loss", "/eval_fraction_of_correct_next_step_preds", "/eval_num_predictions"}
    names = [s["name"] for s in series if s["displayName"] in ("/train_total_loss", "/eval_total_loss")]
    tensorboard = experiment.split("/experiments/")[0]
    data = http.get(f"/v1beta1/{tensorboard}:batchRead", params=[("timeSeries", n) for n in names]).json()
    by_id = {d["tensorboardTimeSeriesId"]: d for d in data["timeSeriesData"]}
    train = by_id["train_total_loss"]["values"]
    assert [int(v["step"]) for v in train] == list(range(1, steps + 1))
    assert all(v["scalar"]["value"] > 0 and v["wallTime"].endswith("Z") for v in train)
    assert len(by_id["eval_total_loss"]["values"]) == 2  # one evaluation per epoch
    single = http.get(f"/v1/{experiment}/runs/train/timeSeries/train_total_loss:read").json()
    assert single["timeSeriesData"]["values"] == train
    everything = http.get(f"/v1/{experiment}/runs/train/timeSeries:batchRead").json()
    assert len(everything["timeSeriesData"]) == 6
    missing = http.get(f"/v1/{experiment}/runs/train/timeSeries/nope:read")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


def test_generate_content_accepts_snake_case(finished_job, http):
    endpoint = finished_job["tunedModel"]["endpoint"]
    body = {"contents": [{"role": "user", "parts": [{"text": "message 3: my account question"}]}],
            "system_instruction": {"parts": [{"text": "Classify the message."}]},
            "generation_config": {"temperature": 0, "max_output_tokens": 4}}
    response = http.post(f"/v1/{endpoint}:generateContent", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["candidates"][0]["content"]["role"] == "model"
    assert answer["usageMetadata"]["candidatesTokenCount"] <= 4


def _error(response: httpx.Response, code: int, status: str, *words: str) -> None:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (code, status)
    for word in words:
        assert word in error["message"]


@pytest.mark.parametrize("body, words", [
    ({"baseModel": "gpt-4", "supervisedTuningSpec": {"trainingDatasetUri": "DATASET"}}, ["unknown base model", "gpt-4"]),
    ({"baseModel": "/etc", "supervisedTuningSpec": {"trainingDatasetUri": "DATASET"}}, ["unknown base model"]),
    ({"supervisedTuningSpec": {"trainingDatasetUri": "DATASET"}}, ["baseModel is required"]),
    ({"baseModel": "gemini-2.5-flash"}, ["supervisedTuningSpec is required"]),
    ({"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://nobucket/x.jsonl"}},
     ["trainingDatasetUri", "gs://nobucket/x.jsonl", "does not exist"]),
    ({"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "https://x/y.jsonl"}},
     ["gs:// or file://"]),
    ({"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {
        "trainingDatasetUri": "DATASET", "hyperParameters": {"epochCount": "many"}}}, ["epochCount", "'many'"]),
    ({"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {
        "trainingDatasetUri": "DATASET", "hyperParameters": {"adapterSize": "ADAPTER_SIZE_THREE"}}},
     ["adapterSize", "ADAPTER_SIZE_THREE"]),
    ({"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {
        "trainingDatasetUri": "DATASET", "hyperParameters": {"learningRateMultiplier": -1}}},
     ["learningRateMultiplier"]),
    ({"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "DATASET", "epochs": 3}},
     ["Unknown name", "supervisedTuningSpec.epochs"]),
    ({"baseModel": "gemini-2.5-flash", "labels": {"Team": "x"}, "supervisedTuningSpec": {"trainingDatasetUri": "DATASET"}},
     ["labels", "Team"]),
])
def test_bad_create_requests_say_what_is_wrong(http, jobs_url, dataset_uri, body, words):
    spec = body.get("supervisedTuningSpec", {})
    if spec.get("trainingDatasetUri") == "DATASET":
        spec["trainingDatasetUri"] = dataset_uri
    _error(http.post(jobs_url, json=body), 400, "INVALID_ARGUMENT", *words)


def test_malformed_json_is_invalid_argument(http, jobs_url):
    _error(http.post(jobs_url, content=b'{"baseModel": ', headers={"content-type": "application/json"}),
           400, "INVALID_ARGUMENT", "Invalid JSON payload")


def test_token_is_required(local_vertex, jobs_url):
    _error(httpx.get(local_vertex.base_url + jobs_url), 401, "UNAUTHENTICATED")
    _error(httpx.get(local_vertex.base_url + jobs_url, headers={"Authorization": "Bearer wrong"}),
           401, "UNAUTHENTICATED")
    assert httpx.get(local_vertex.base_url + "/healthz").json()["status"] == "ok"


def test_request_bodies_are_size_limited(http, jobs_url):
    huge = b'{"baseModel": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    _error(http.post(jobs_url, content=huge), 413, "INVALID_ARGUMENT", "exceeds")

    def chunks():  # no Content-Length: the limit holds while streaming too
        for _ in range(10):
            yield b" " * (1024 * 1024)

    _error(http.post(jobs_url, content=chunks()), 413, "INVALID_ARGUMENT", "exceeds")


def test_unknown_routes_and_ids_have_the_google_error_shape(http, local_vertex):
    _error(http.get(f"/v1/{local_vertex.parent}/datasets"), 404, "NOT_FOUND")
    _error(http.get(f"/v1/{local_vertex.parent}/tuningJobs/..%2F..%2Fjobs.sqlite"), 404, "NOT_FOUND")
    _error(http.post(f"/v1/{local_vertex.parent}/endpoints/..%2Fetc:generateContent",
                     json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}), 404, "NOT_FOUND")
    _error(http.get(f"/v1/projects/other/locations/{local_vertex.location}/tuningJobs/1"), 404, "NOT_FOUND")


def test_list_filters_and_pages(http, jobs_url, finished_job):
    def names(**params):
        response = http.get(jobs_url, params=params)
        assert response.status_code == 200, response.text
        return [job["name"] for job in response.json().get("tuningJobs", [])]

    assert finished_job["name"] in names(filter='labels.suite="http" AND state="JOB_STATE_SUCCEEDED"')
    assert finished_job["name"] in names(filter="labels.suite:* AND NOT state=JOB_STATE_FAILED")
    assert names(filter='labels.suite="http" AND state="JOB_STATE_RUNNING"') == []
    assert names(filter='labels.suite="nope"') == []
    _error(http.get(jobs_url, params={"filter": 'colour="red"'}), 400, "INVALID_ARGUMENT", "unknown field")
    _error(http.get(jobs_url, params={"filter": 'state="x" AND ('}), 400, "INVALID_ARGUMENT")
    _error(http.get(jobs_url, params={"pageToken": "garbage"}), 400, "INVALID_ARGUMENT", "pageToken")
    _error(http.get(jobs_url, params={"pageSize": "ten"}), 400, "INVALID_ARGUMENT", "pageSize")


def test_non_loopback_bind_without_a_token_is_refused(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-m", "include.local_vertex", "serve", "--host", "0.0.0.0",
                           "--data-dir", str(tmp_path)], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "--token" in done.stderr and "0.0.0.0" in done.stderr
    assert not (tmp_path / "jobs.sqlite").exists()
