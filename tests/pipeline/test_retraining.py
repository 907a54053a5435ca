"""Retraining under a real Airflow (standalone, real triggerer) against the local service's tiny model.

A producer DAG lands a new training file on gs:// (the storage emulator) and announces it on the
training-data Asset; the pipeline must tune on exactly that data. The tests share one Airflow and
run in order: the first run's model is the incumbent of the next ones.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.conftest import PROJECT_ROOT
from tests.pipeline.conftest import DAG_ID, PRODUCER

pytestmark = pytest.mark.slow

PRODUCER_ID = PRODUCER.stem
BUCKET = "retraining-landing"
SAMPLE = PROJECT_ROOT / "include" / "sample_data" / "classification"
# Enough for the classification minimum (500) once a tenth is held out.
LANDED_EXAMPLES = 560
# Later events: small files and a short smoke test on the sample's held-out prompts, where the
# tiny model gives non-empty (if wrong) answers.
SMALL = {"allow_small_dataset": True, "smoke_test_count": 3, "require_better_than_base": False,
         "smoke_test_prompts": str(SAMPLE / "heldout.jsonl")}


def _new_examples(count: int, tag: str) -> list[str]:
    """New tickets in the sample's format, none of them a line of the sample files."""
    lines = (SAMPLE / "train.jsonl").read_text().splitlines()
    examples = []
    for index in range(count):
        example = json.loads(lines[index % len(lines)])
        example["contents"][0]["parts"][0]["text"] = f"[{tag} {index}] " + example["contents"][0]["parts"][0]["text"]
        examples.append(json.dumps(example))
    return examples


@pytest.fixture(scope="module")
def airflow(standalone_pipeline, local_vertex):
    httpx.post(f"{local_vertex.storage_url}/storage/v1/b", json={"name": BUCKET}, timeout=30).raise_for_status()
    with standalone_pipeline.client() as client:  # a paused DAG gets no asset-triggered run
        client.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
    return standalone_pipeline


def _asset_runs(client) -> set[str]:
    runs = client.get(f"/dags/{DAG_ID}/dagRuns", params={"limit": 100}).json()["dag_runs"]
    return {run["dag_run_id"] for run in runs if run["run_type"] == "asset_triggered"}


def _retrain(airflow, tmp_path, examples: list[str] | None, name: str, extra: dict | None = None) -> str:
    """Land a file through the producer DAG and return the retraining run it starts."""
    source = tmp_path / f"{name}.jsonl"
    if examples is not None:
        source.write_text("\n".join(examples) + "\n")
    destination = f"gs://{BUCKET}/{name}.jsonl"
    with airflow.client() as client:
        before = _asset_runs(client)
        if examples is None:  # a producer that announces a file it never wrote
            [asset] = client.get("/assets", params={"name_pattern": "gemini_tuning_training_data"}).json()["assets"]
            client.post("/assets/events", json={"asset_id": asset["id"],
                                                "extra": {"training_dataset": destination}}).raise_for_status()
    if examples is not None:
        producer_run = airflow.trigger(PRODUCER_ID, {"source": str(source), "destination": destination,
                                                     "extra": extra or {}})
        assert airflow.wait_for_run(PRODUCER_ID, producer_run, timeout=180)["state"] == "success"
    with airflow.client() as client:
        deadline = time.monotonic() + 180
        while not (new := _asset_runs(client) - before):
            assert time.monotonic() < deadline, "no asset-triggered run was scheduled"
            time.sleep(2)
    [run_id] = new
    return run_id


def _xcom(client, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1):
    response = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
                          params={"map_index": map_index, "deserialize": True})
    return response.json()["value"] if response.status_code == 200 else None


def _job(local_vertex, client, run_id: str) -> dict:
    name = _xcom(client, run_id, "create_tuning_job", "tuning_job_name", map_index=0)
    with local_vertex.http() as http:
        return http.get(f"/v1/{name}").json()


def _read(local_vertex, uri: str) -> list[str]:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    response = httpx.get(f"{local_vertex.storage_url}/download/storage/v1/b/{bucket}/o/{name.replace('/', '%2F')}",
                         params={"alt": "media"}, timeout=30)
    response.raise_for_status()
    return response.text.splitlines()


def _training_losses(local_vertex, job: dict) -> list[float]:
    with local_vertex.http() as http:
        values = http.get(f"/v1/{job['experiment']}/runs/train/timeSeries/train_total_loss:read").json()
    return [point["scalar"]["value"] for point in values["timeSeriesData"]["values"]]


def _current_model(client) -> dict | None:
    events = client.get("/assets/events", params={"source_dag_id": DAG_ID, "order_by": "-timestamp",
                                                  "limit": 1}).json()["asset_events"]
    return events[0]["extra"] if events else None


def _log_hint(airflow) -> str:
    return f"see {airflow.home}/standalone.log and {airflow.home}/logs"


@pytest.fixture(scope="module")
def first_run(airflow, local_vertex, tmp_path_factory):
    """An event with only `training_dataset`, on a file nobody has seen: the run tunes on it alone."""
    landed = _new_examples(LANDED_EXAMPLES, "first")
    run_id = _retrain(airflow, tmp_path_factory.mktemp("landed"), landed, "first")
    run = airflow.wait_for_run(DAG_ID, run_id, timeout=900)
    return run_id, run, landed


def _answer_approvals(airflow, run_id: str, option: str) -> tuple[str, dict]:
    """Answer the run's approval requests as a person would, until the run ends.

    Under load, Airflow 3.3 can lose the resumed task's report and retry the task, which asks
    again (a new try): the person answers that one too. Returns the first request's body and the run.
    """
    bodies = []
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve_publish"
    with airflow.client() as client:
        deadline = time.monotonic() + 900
        while client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"] not in ("success", "failed"):
            assert time.monotonic() < deadline, f"the run did not end: {_log_hint(airflow)}"
            if client.get(path).json().get("state") == "awaiting_input":
                bodies.append(client.get(f"{path}/-1/hitlDetails").json()["body"])
                client.patch(f"{path}/-1/hitlDetails", json={"chosen_options": [option]}).raise_for_status()
            time.sleep(3)
    assert bodies, "no approval was asked"
    print(f"\napproval asked {len(bodies)} time(s)")
    return bodies[0], airflow.wait_for_run(DAG_ID, run_id, timeout=60)


def test_an_event_with_only_the_training_file_tunes_on_that_file_and_a_held_out_part_of_it(
        airflow, local_vertex, first_run):
    run_id, run, landed = first_run
    # The form's default smoke test (50 prompts, no empty answer allowed) is more than the tiny
    # test model reliably passes: the run either publishes, or fails there alone and publishes nothing.
    failed = {task for task, state in run["task_states"].items() if state == "failed"}
    published = run["task_states"]["publish_tuned_model"] == "success"
    assert (run["state"], failed, published) in (("success", set(), True), ("failed", {"smoke_test"}, False)), (
        f"{run['task_states']}: {_log_hint(airflow)}")
    with airflow.client() as client:
        job = _job(local_vertex, client, run_id)
        split = _xcom(client, run_id, "resolve_inputs", "split")
        assert (_current_model(client) is not None) == published
    spec = job["supervisedTuningSpec"]
    trained_on, validated_on = _read(local_vertex, spec["trainingDatasetUri"]), _read(local_vertex, spec["validationDatasetUri"])
    assert set(trained_on) | set(validated_on) == set(landed) and not set(trained_on) & set(validated_on)
    assert len(validated_on) == LANDED_EXAMPLES // 10 == split["validation_examples"]
    assert job["tuningDataStats"]["supervisedTuningDataStats"]["tuningDatasetExampleCount"] == str(len(trained_on))
    sample = {line for name in ("train", "validation", "heldout") for line in (SAMPLE / f"{name}.jsonl").read_text().splitlines()}
    assert not (set(trained_on) | set(validated_on)) & sample
    assert split["source"] == f"gs://{BUCKET}/first.jsonl"
    assert job["state"] == "JOB_STATE_SUCCEEDED" and "preTunedModel" not in job


def test_a_second_event_continues_the_first_model_as_its_next_version_and_approved_it_is_published(
        airflow, local_vertex, first_run, tmp_path):
    first_id, _, _ = first_run
    with airflow.client() as client:
        first_job = _job(local_vertex, client, first_id)
        incumbent = _current_model(client)
    model, version = first_job["tunedModel"]["model"].split("@")
    run_id = _retrain(airflow, tmp_path, _new_examples(60, "second"), "second",
                      {**SMALL, "tune_from": "named_model", "pre_tuned_model": model, "require_approval": True})
    body, run = _answer_approvals(airflow, run_id, "Approve")
    assert run["state"] == "success", f"{run['task_states']}: {_log_hint(airflow)}"
    with airflow.client() as client:
        job = _job(local_vertex, client, run_id)
        current = _current_model(client)
        said = _xcom(client, run_id, "outcome")
    assert job["preTunedModel"] == {"tunedModelName": model, "baseModel": first_job["baseModel"]}
    assert job["tunedModel"]["model"] == f"{model}@{int(version) + 1}" == current["model"]
    chosen = next(c for c in job["tunedModel"]["checkpoints"] if c["checkpointId"] == current["checkpoint_id"])
    assert said["published"] and current["endpoint"] == chosen["endpoint"]  # the chosen checkpoint's own endpoint
    first_losses, continued = _training_losses(local_vertex, first_job), _training_losses(local_vertex, job)[0]
    fresh, left_off = first_losses[0], first_losses[-1]
    print(f"\nfirst training loss: fresh {fresh:.3f}, continued {continued:.3f} (the first model ended at {left_off:.3f})")
    assert continued < (fresh + left_off) / 2  # it starts nearer where the model left off than from scratch
    assert "**Challenger**" in body and f"**Incumbent** `{incumbent['endpoint'] if incumbent else 'none'}`" in body
    assert "**Base model**: n/a" not in body  # a continued job's base model is asked too


def test_a_rejected_challenger_is_not_published_and_the_incumbent_stays_current(airflow, local_vertex, tmp_path):
    with airflow.client() as client:
        incumbent = _current_model(client)
    run_id = _retrain(airflow, tmp_path, _new_examples(40, "third"), "third",
                      {**SMALL, "tune_from": "incumbent", "require_approval": True})
    body, run = _answer_approvals(airflow, run_id, "Reject")
    with airflow.client() as client:
        said = _xcom(client, run_id, "outcome")
        current = _current_model(client)
        job = _job(local_vertex, client, run_id)
    assert run["state"] == "success", f"{run['task_states']}: {_log_hint(airflow)}"
    assert job["preTunedModel"]["tunedModelName"] == incumbent["model"]  # continued from the incumbent
    assert f"**Incumbent** `{incumbent['endpoint']}`" in body
    assert run["task_states"]["publish_tuned_model"] == "skipped"
    assert not said["published"] and "rejected" in said["said"]
    assert current == incumbent


def _incumbent_answers(pipeline_env, endpoint: str, monkeypatch) -> list[dict]:
    """Three held-out prompts with the incumbent's own answers as the expected ones, asked with the
    form's generation settings: the incumbent scores 100% on them, whatever the tiny model says."""
    from gemini_tuning.hooks.tuning import GenAITuningHook
    from gemini_tuning.prompts import load_prompts_file

    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_TUNING_DEFAULT", pipeline_env.env["AIRFLOW_CONN_GEMINI_TUNING_DEFAULT"])
    hook, settings = GenAITuningHook(), {"temperature": 0.0, "topP": 0.95, "topK": 40, "maxOutputTokens": 16}
    prompts = []
    for prompt in load_prompts_file(str(SAMPLE / "heldout.jsonl"))[:3]:
        answer = hook.generate_content(model=endpoint, contents=prompt.contents,
                                       system_instruction=prompt.system_instruction, generation_config=settings).text
        prompts.append({"prompt": prompt.text, "systemInstruction": prompt.system_instruction, "expected": answer})
    return prompts


def test_a_worse_challenger_is_not_published_and_the_incumbent_stays_current(
        airflow, local_vertex, pipeline_env, tmp_path, monkeypatch):
    """Trained from the base model on shuffled labels, the challenger does not match the incumbent."""
    import random

    with airflow.client() as client:
        incumbent = _current_model(client)
    prompts = tmp_path / "incumbent-answers.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in _incumbent_answers(pipeline_env, incumbent["endpoint"],
                                                                                   monkeypatch)))
    shuffled = [json.loads(line) for line in _new_examples(60, "shuffled")]
    labels = [example["contents"][1]["parts"][0]["text"] for example in shuffled]
    random.Random(0).shuffle(labels)
    for example, label in zip(shuffled, labels):
        example["contents"][1]["parts"][0]["text"] = label
    run_id = _retrain(airflow, tmp_path, [json.dumps(example) for example in shuffled], "shuffled",
                      {**SMALL, "smoke_test_prompts": str(prompts)})
    run = airflow.wait_for_run(DAG_ID, run_id, timeout=600)
    assert run["state"] == "success", f"{run['task_states']}: {_log_hint(airflow)}"
    with airflow.client() as client:
        said = _xcom(client, run_id, "outcome")
        current = _current_model(client)
    scores = said["verdict"]["scores"]
    print(f"\nworse challenger: scores {scores}")
    assert scores["incumbent"] == 1.0 and scores["challenger"] < 1.0
    assert run["task_states"]["keep_incumbent"] == "success" and run["task_states"]["publish_tuned_model"] == "skipped"
    assert not said["published"] and "kept" in said["said"]
    assert current == incumbent


def test_an_event_naming_a_missing_file_fails_at_once_naming_it_and_creates_nothing(airflow, local_vertex, tmp_path):
    with local_vertex.http() as http:
        jobs_before = len(http.get(f"/v1/{local_vertex.parent}/tuningJobs").json().get("tuningJobs", []))
    run_id = _retrain(airflow, tmp_path, None, "missing")
    run = airflow.wait_for_run(DAG_ID, run_id, timeout=300)
    with airflow.client() as client:
        ti = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/resolve_inputs").json()
    logs = airflow.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=resolve_inputs"
    log = "\n".join(path.read_text(errors="replace") for path in logs.glob("*.log"))
    assert run["state"] == "failed" and ti["state"] == "failed" and ti["try_number"] == 1
    errors = [detail["exc_value"] for line in log.splitlines() if '"error_detail"' in line
              for detail in json.loads(line)["error_detail"]]
    assert any(f"gs://{BUCKET}/missing.jsonl" in error and "Nothing was started" in error for error in errors), errors
    assert {state for task, state in run["task_states"].items() if task != "resolve_inputs"} <= {
        "upstream_failed", "skipped", None}
    with local_vertex.http() as http:
        assert len(http.get(f"/v1/{local_vertex.parent}/tuningJobs").json().get("tuningJobs", [])) == jobs_before
