"""Intermediate checkpoints on the real local service (tiny model): listed while the job runs, each
served on its own endpoint, the model's default changed by PATCH, and every answer checked
against Google's schema and protobuf types."""

from __future__ import annotations

import pytest

from include.local_vertex.checkpoints import checkpoint_epochs
from tests.fixtures.local_vertex import chat_rows
from tests.local_vertex.conformance import answer_problems

EPOCHS = 3
# Eight sampled answers with a fixed seed: the same adapter answers the same, and adapters one
# epoch apart (the model still learning) answer differently.
SAMPLED = {"contents": [{"role": "user", "parts": [{"text": "message 5: my billing question"}]}],
           "systemInstruction": {"parts": [{"text": "Classify the message."}]},
           "generationConfig": {"temperature": 1.0, "topK": 1_000_000, "topP": 1.0, "seed": 7, "candidateCount": 8,
                                "maxOutputTokens": 12}}


@pytest.mark.parametrize("epochs, last_only, expected", [
    (1, False, (1,)),
    (3, False, (1, 2, 3)),
    (9, False, tuple(range(1, 10))),
    (10, False, tuple(range(1, 11))),
    (25, False, (3, 5, 8, 10, 13, 15, 18, 20, 23, 25)),
    (100, False, tuple(range(10, 101, 10))),
    (4, True, (4,)),
])
def test_vertex_rule_one_per_epoch_below_ten_about_ten_above(epochs, last_only, expected):
    assert checkpoint_epochs(epochs, last_only) == expected


class Checked:
    """HTTP calls whose answers must satisfy Google's referees (see conformance.py)."""

    def __init__(self, http):
        self.http = http
        self.problems: list[str] = []

    def __call__(self, method: str, path: str, expect: int = 200, **kwargs):
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text[:300]}"
        _, problems = answer_problems(method, path, response.status_code, response.content,
                                      response.headers.get("content-type", ""))
        self.problems += [f"{method} {path}: {problem}" for problem in problems]
        return response.json() if "json" in response.headers.get("content-type", "") else response


@pytest.fixture(scope="module")
def http(local_vertex):
    with local_vertex.http() as client:
        yield client


def _create(local_vertex, checked, name: str, rows: int, epochs: int, **spec) -> dict:
    uri = local_vertex.write_dataset(f"{name}.jsonl", chat_rows(rows))
    return checked("POST", f"/v1/{local_vertex.parent}/tuningJobs", json={
        "baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {
            "trainingDatasetUri": uri, "validationDatasetUri": uri,
            "hyperParameters": {"epochCount": epochs, "learningRateMultiplier": 1}, **spec}})


@pytest.fixture(scope="module")
def three_epochs(local_vertex, http):
    """A 3-epoch job, seen while it runs (its first checkpoint listed and served) and after."""
    checked = Checked(http)
    job = _create(local_vertex, checked, "checkpoints-3-epochs", rows=480, epochs=EPOCHS)
    running = local_vertex.wait_for_state(
        job["name"], {"JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"}, timeout_s=300)
    while running["state"] == "JOB_STATE_RUNNING" and not running.get("tunedModel", {}).get("checkpoints"):
        running = checked("GET", f"/v1/{job['name']}")
    assert running["state"] == "JOB_STATE_RUNNING", "the job ended before its first checkpoint was seen"
    first = running["tunedModel"]["checkpoints"][0]
    answer_while_running = checked("POST", f"/v1/{first['endpoint']}:generateContent", json=SAMPLED)
    done = local_vertex.wait_for_state(job["name"], {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"}, timeout_s=600)
    assert done["state"] == "JOB_STATE_SUCCEEDED", done.get("error")
    return checked, running, answer_while_running, checked("GET", f"/v1/{job['name']}")


def _text(answer: dict) -> tuple[str, ...]:
    return tuple(candidate["content"]["parts"][0]["text"] for candidate in answer["candidates"])


@pytest.mark.slow
def test_a_three_epoch_job_lists_three_checkpoints_while_and_after_it_runs(three_epochs, local_vertex):
    checked, running, _, job = three_epochs
    listed = job["tunedModel"]["checkpoints"]
    assert [(c["checkpointId"], c["epoch"]) for c in listed] == [("1", "1"), ("2", "2"), ("3", "3")]
    assert listed[0] == running["tunedModel"]["checkpoints"][0]  # the same checkpoint, as first reported
    steps = [int(c["step"]) for c in listed]
    assert steps == [steps[0] * epoch for epoch in (1, 2, 3)] and steps[-1] == int(
        job["tuningDataStats"]["supervisedTuningDataStats"]["tuningStepCount"])
    assert len({c["endpoint"] for c in listed} | {job["tunedModel"]["endpoint"]}) == 4
    # The eval metrics are in the series at each checkpoint's step.
    series = checked("GET", f"/v1/{job['experiment']}/runs/train/timeSeries/eval_total_loss:read")
    assert {int(point["step"]) for point in series["timeSeriesData"]["values"]} >= set(steps)
    # Adapters, not model copies.
    job_dir = local_vertex.data_dir / "jobs" / job["name"].rsplit("/", 1)[1]
    assert sorted(p.name for p in job_dir.glob("adapter*")) == ["adapter", "adapter-epoch-0001", "adapter-epoch-0002"]
    assert not checked.problems, "\n".join(checked.problems)


@pytest.mark.slow
def test_each_checkpoint_endpoint_serves_its_own_adapter(three_epochs):
    checked, _, answer_while_running, job = three_epochs
    endpoints = [c["endpoint"] for c in job["tunedModel"]["checkpoints"]]
    answers = [_text(checked("POST", f"/v1/{endpoint}:generateContent", json=SAMPLED)) for endpoint in endpoints]
    assert answers[0] == _text(answer_while_running)  # the same adapter, the same seed: the same answer
    assert len(set(answers)) == 3, answers  # three adapters, three answers
    for endpoint in endpoints:
        checked("POST", f"/v1/{endpoint}:streamGenerateContent", params={"alt": "sse"},
                json={**SAMPLED, "generationConfig": {"temperature": 0, "maxOutputTokens": 4}})
        assert checked("POST", f"/v1/{endpoint}:countTokens", json={"contents": SAMPLED["contents"]})["totalTokens"] > 0
        checked("POST", f"/v1/{endpoint}:computeTokens", json={"contents": SAMPLED["contents"]})
    checked("POST", f"/v1/{endpoints[0][:-3]}999:generateContent", 404, json=SAMPLED)
    assert not checked.problems, "\n".join(checked.problems)


@pytest.mark.slow
def test_calls_to_several_checkpoints_at_once_each_get_their_own_adapters_answer(three_epochs, local_vertex):
    """The generation process batches what waits: calls to different checkpoints arrive together."""
    from concurrent.futures import ThreadPoolExecutor

    _, _, _, job = three_epochs
    endpoints = [c["endpoint"] for c in job["tunedModel"]["checkpoints"]] * 2

    def ask(endpoint: str) -> tuple[str, ...]:
        with local_vertex.http() as client:
            response = client.post(f"/v1/{endpoint}:generateContent", json=SAMPLED)
            assert response.status_code == 200, response.text
            return _text(response.json())

    alone = {endpoint: ask(endpoint) for endpoint in endpoints}
    with ThreadPoolExecutor(len(endpoints)) as pool:
        together = list(pool.map(ask, endpoints))
    assert together == [alone[endpoint] for endpoint in endpoints]


@pytest.mark.slow
def test_the_models_default_checkpoint_decides_what_its_main_endpoint_serves(three_epochs, local_vertex):
    checked, _, _, job = three_epochs
    model, main = job["tunedModel"]["model"], job["tunedModel"]["endpoint"]
    first, _, last = job["tunedModel"]["checkpoints"]
    answer = {c["checkpointId"]: _text(checked("POST", f"/v1/{c['endpoint']}:generateContent", json=SAMPLED))
              for c in (first, last)}
    for name in (model, model.split("@")[0]):
        resource = checked("GET", f"/v1/{name}")
        assert resource["defaultCheckpointId"] == "3"
        assert [c["checkpointId"] for c in resource["checkpoints"]] == ["1", "2", "3"]
    assert _text(checked("POST", f"/v1/{main}:generateContent", json=SAMPLED)) == answer["3"]  # the last, at first

    error = checked("PATCH", f"/v1/{model}", 400, params={"updateMask": "defaultCheckpointId"},
                    json={"defaultCheckpointId": "7"})
    assert "'7'" in error["error"]["message"] and "1, 2, 3" in error["error"]["message"]
    checked("PATCH", f"/v1/{model}", 400, params={"updateMask": "displayName"}, json={"displayName": "x"})
    updated = checked("PATCH", f"/v1/{model}", params={"updateMask": "defaultCheckpointId"},
                      json={"defaultCheckpointId": "1"})
    assert updated["defaultCheckpointId"] == "1"
    assert checked("GET", f"/v1/{model.split('@')[0]}")["defaultCheckpointId"] == "1"
    assert _text(checked("POST", f"/v1/{main}:generateContent", json=SAMPLED)) == answer["1"]

    # google-genai's models.update sends the body without updateMask: the body's fields are the mask.
    from google.genai import types

    client = local_vertex.genai_client()
    changed = client.models.update(model=model, config=types.UpdateModelConfig(default_checkpoint_id="3"))
    assert changed.default_checkpoint_id == "3" and [c.epoch for c in changed.checkpoints] == [1, 2, 3]
    assert _text(checked("POST", f"/v1/{main}:generateContent", json=SAMPLED)) == answer["3"]
    assert not checked.problems, "\n".join(checked.problems)


@pytest.mark.slow
def test_export_last_checkpoint_only_keeps_one(local_vertex, http):
    checked = Checked(http)
    job = _create(local_vertex, checked, "checkpoints-last-only", rows=16, epochs=2, exportLastCheckpointOnly=True)
    job = local_vertex.wait_for_state(job["name"], {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})
    assert job["state"] == "JOB_STATE_SUCCEEDED", job.get("error")
    [only] = job["tunedModel"]["checkpoints"]
    assert (only["checkpointId"], only["epoch"]) == ("1", "2")
    model = checked("GET", f"/v1/{job['tunedModel']['model']}")
    assert model["defaultCheckpointId"] == "1" and len(model["checkpoints"]) == 1
    job_dir = local_vertex.data_dir / "jobs" / job["name"].rsplit("/", 1)[1]
    assert [p.name for p in job_dir.glob("adapter*")] == ["adapter"]
    checked("POST", f"/v1/{only['endpoint']}:generateContent", json=SAMPLED)
    assert not checked.problems, "\n".join(checked.problems)
