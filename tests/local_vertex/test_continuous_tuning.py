"""Continuous tuning on the local service: a job continues a tuned model and makes its next version."""

from __future__ import annotations

import pytest

from tests.fixtures.local_vertex import chat_rows
from tests.local_vertex.conformance import answer_problems

ENDED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"}


def _first_loss(http, job: dict) -> float:
    values = http.get(f"/v1/{job['experiment']}/runs/train/timeSeries/train_total_loss:read").json()
    return values["timeSeriesData"]["values"][0]["scalar"]["value"]


def _checked(response) -> dict:
    """The answer, after the conformance referees (Google's schema and protobuf types) accepted it."""
    request = response.request
    _, problems = answer_problems(request.method, request.url.path, response.status_code, response.content,
                                  response.headers.get("content-type", ""))
    assert not problems, problems
    return response.json()


@pytest.fixture(scope="module")
def first_model(local_vertex):
    """A tuned model, version 1, trained for a few epochs on the data the continued job sees again."""
    data = local_vertex.write_dataset("continuous.jsonl", chat_rows(16))
    with local_vertex.http() as http:
        job = http.post(f"/v1/{local_vertex.parent}/tuningJobs", json={
            "baseModel": "gemini-2.5-flash", "tunedModelDisplayName": "continued",
            "supervisedTuningSpec": {"trainingDatasetUri": data, "hyperParameters": {
                "epochCount": 4, "adapterSize": "ADAPTER_SIZE_FOUR", "learningRateMultiplier": 10}}}).json()
    job = local_vertex.wait_for_state(job["name"], ENDED, timeout_s=300)
    assert job["state"] == "JOB_STATE_SUCCEEDED", job
    return job, data


def test_a_job_continued_through_google_genai_is_the_next_version_and_starts_where_the_model_left(
        local_vertex, first_model):
    from google.genai.types import CreateTuningJobConfig, TuningDataset

    first, data = first_model
    client = local_vertex.genai_client()
    continued = client.tunings.tune(base_model=first["tunedModel"]["model"].split("@")[0],
                                    training_dataset=TuningDataset(gcs_uri=data),
                                    config=CreateTuningJobConfig(epoch_count=1))
    job = local_vertex.wait_for_state(continued.name, ENDED, timeout_s=300)
    assert job["state"] == "JOB_STATE_SUCCEEDED", job
    model_name = first["tunedModel"]["model"].split("@")[0]
    assert job["preTunedModel"] == {"tunedModelName": model_name, "baseModel": "gemini-2.5-flash"}
    assert "baseModel" not in job
    assert job["tunedModel"]["model"] == f"{model_name}@2"
    assert job["tunedModel"]["endpoint"] != first["tunedModel"]["endpoint"]
    assert job["tunedModelDisplayName"] == "continued"
    assert job["supervisedTuningSpec"]["hyperParameters"]["adapterSize"] == "ADAPTER_SIZE_FOUR"
    with local_vertex.http() as http:
        _checked(http.get(f"/v1/{job['name']}"))
        fresh_loss, continued_loss = _first_loss(http, first), _first_loss(http, job)
        version_2 = _checked(http.get(f"/v1/{model_name}@2"))
        newest = _checked(http.get(f"/v1/{model_name}"))
        version_1 = _checked(http.get(f"/v1/{model_name}@1"))
    print(f"\nfirst training loss: fresh {fresh_loss:.3f}, continued {continued_loss:.3f}")
    assert continued_loss < fresh_loss / 2
    assert (version_2["versionId"], version_2["versionAliases"]) == ("2", ["default"])
    assert newest["versionId"] == "2"
    assert (version_1["versionId"], version_1["versionAliases"]) == ("1", [])
    assert version_2["baseModelSource"]["genieSource"]["baseModelUri"] == "gemini-2.5-flash"


def test_a_job_continued_from_an_earlier_checkpoint_starts_from_that_checkpoint(local_vertex, first_model):
    """checkpointId picks the adapter continued: the first epoch's, less trained than the default (the last)."""
    first, data = first_model
    model = first["tunedModel"]["model"]
    jobs = {}
    with local_vertex.http() as http:
        for checkpoint in ("1", None):
            pre_tuned = {"tunedModelName": model, **({"checkpointId": checkpoint} if checkpoint else {})}
            created = http.post(f"/v1/{local_vertex.parent}/tuningJobs", json={
                "preTunedModel": pre_tuned, "supervisedTuningSpec": {
                    "trainingDatasetUri": data, "hyperParameters": {"epochCount": 1}}})
            assert created.status_code == 200, created.text
            jobs[checkpoint] = local_vertex.wait_for_state(created.json()["name"], ENDED, timeout_s=300)
        assert all(job["state"] == "JOB_STATE_SUCCEEDED" for job in jobs.values()), jobs
        assert jobs["1"]["preTunedModel"]["checkpointId"] == "1"
        from_first_epoch, from_default = _first_loss(http, jobs["1"]), _first_loss(http, jobs[None])
    print(f"\nfirst training loss continued from checkpoint 1: {from_first_epoch:.3f}, "
          f"from the default (last) checkpoint: {from_default:.3f}")
    assert from_first_epoch > from_default


@pytest.mark.parametrize("pre_tuned, status, words", [
    ({"tunedModelName": "{parent}/models/123456789012345678"}, 404, "not found"),
    ({"tunedModelName": "{model}@7"}, 404, "@7 not found"),
    ({"tunedModelName": "{model}", "checkpointId": "9"}, 404, "no checkpoint '9'"),
    ({"tunedModelName": "projects/other/locations/us-central1/models/1"}, 400, "is not under"),
    ({"tunedModelName": "gemini-2.5-flash"}, 400, "preTunedModel.tunedModelName must be"),
    ({"tunedModelName": "{model}", "colour": "red"}, 400, "preTunedModel.colour"),
])
def test_a_model_that_cannot_be_continued_is_a_clear_error(local_vertex, first_model, pre_tuned, status, words):
    first, data = first_model
    names = {"parent": local_vertex.parent, "model": first["tunedModel"]["model"].split("@")[0]}
    body = {"preTunedModel": {key: value.format(**names) for key, value in pre_tuned.items()},
            "supervisedTuningSpec": {"trainingDatasetUri": data}}
    with local_vertex.http() as http:
        response = http.post(f"/v1/{local_vertex.parent}/tuningJobs", json=body)
    assert response.status_code == status and words in response.json()["error"]["message"], response.text


def test_a_continued_model_keeps_its_adapter_size_and_takes_no_base_model_beside_it(local_vertex, first_model):
    first, data = first_model
    model = first["tunedModel"]["model"]
    with local_vertex.http() as http:
        other_size = http.post(f"/v1/{local_vertex.parent}/tuningJobs", json={
            "preTunedModel": {"tunedModelName": model},
            "supervisedTuningSpec": {"trainingDatasetUri": data, "hyperParameters": {"adapterSize": "ADAPTER_SIZE_ONE"}}})
        both = http.post(f"/v1/{local_vertex.parent}/tuningJobs", json={
            "baseModel": "gemini-2.5-flash", "preTunedModel": {"tunedModelName": model},
            "supervisedTuningSpec": {"trainingDatasetUri": data}})
    assert other_size.status_code == 400 and "must be ADAPTER_SIZE_FOUR" in other_size.json()["error"]["message"]
    assert both.status_code == 400 and "not both" in both.json()["error"]["message"]
