"""Every request of Google's supervised-tuning guide, byte for byte as the guide prints it, against
the local service: create (the curl example), list, get, cancel (`-d ""`) and the "test the tuned
model with a prompt" body (`"role": "USER"`, `"parts"` as one object, snake_case
`generation_config`). Only the guide's placeholders are replaced, as its reader would.

The guide's create *template* is not JSON (an unclosed string and trailing commas); it is
refused with Google's "Invalid JSON payload" error, which is what Vertex does with it too.
"""

from __future__ import annotations

import json

import pytest

from tests.fixtures.local_vertex import chat_rows

pytestmark = pytest.mark.slow

HEADERS = {"Content-Type": "application/json; charset=utf-8"}

GUIDE_CREATE_EXAMPLE = """{
   "baseModel": "gemini-1.0-pro-002",
   "supervisedTuningSpec" : {
      "training_dataset_uri": "gs://cloud-samples-data/ai-platform/generative_ai/sft_train_data.jsonl",
      "validation_dataset_uri": "gs://cloud-samples-data/ai-platform/generative_ai/sft_validation_data.jsonl"
   },
   "tunedModelDisplayName": "tuned_gemini_pro"
}"""

GUIDE_CREATE_TEMPLATE = """{
  "baseModel": "BASE_MODEL",
  "supervisedTuningSpec" : {
      "training_dataset_uri": "TRAINING_DATASET_URI",
      "validation_dataset_uri": "VALIDATION_DATASET_URI",
      "hyper_parameters": {
          "epoch_count": EPOCH_COUNT,
          "adapter_size": ADAPTER_SIZE,
          "learning_rate_multiplier": LEARNING_RATE_MULTIPLIER
      },
  },
  "tunedModelDisplayName": "TUNED_MODEL_DISPLAYNAME,
}"""

GUIDE_PROMPT = """{
    "contents": [
        {
            "role": "USER",
            "parts": {
                "text" : "Why is sky blue?"
            }
        }
    ],
    "generation_config": {
        "temperature":TEMPERATURE,
        "top_p": TOP_P,
        "top_k": TOP_K,
        "max_output_tokens": MAX_OUTPUT_TOKENS
    }
}"""


def fill(template: str, **values) -> bytes:
    for name, value in values.items():
        template = template.replace(name, str(value))
    return template.encode()


@pytest.fixture(scope="module")
def guide(local_vertex):
    """The guide's sample datasets at their gs:// paths, in the service's storage emulator."""
    from google.cloud import storage

    client = storage.Client(project=local_vertex.project)
    bucket = client.bucket("cloud-samples-data")
    if not bucket.exists():
        client.create_bucket("cloud-samples-data")
    for name, rows in (("sft_train_data.jsonl", chat_rows(16)), ("sft_validation_data.jsonl", chat_rows(4))):
        bucket.blob(f"ai-platform/generative_ai/{name}").upload_from_string(
            "".join(json.dumps(row) + "\n" for row in rows))
    with local_vertex.http() as http:
        yield http, f"/v1/{local_vertex.parent}"


@pytest.fixture(scope="module")
def created(guide):
    http, parent = guide
    response = http.post(f"{parent}/tuningJobs", content=GUIDE_CREATE_EXAMPLE.encode(), headers=HEADERS)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_guides_create_example_verbatim(created):
    assert created["baseModel"] == "gemini-1.0-pro-002"
    assert created["tunedModelDisplayName"] == "tuned_gemini_pro"
    assert created["supervisedTuningSpec"]["trainingDatasetUri"].endswith("/sft_train_data.jsonl")
    assert created["supervisedTuningSpec"]["validationDatasetUri"].endswith("/sft_validation_data.jsonl")


def test_the_guides_list_and_get_verbatim(guide, created):
    http, parent = guide
    listed = http.get(f"{parent}/tuningJobs")
    assert listed.status_code == 200 and created["name"] in [job["name"] for job in listed.json()["tuningJobs"]]
    job_id = created["name"].rsplit("/", 1)[1]
    got = http.get(f"{parent}/tuningJobs/{job_id}")
    assert got.status_code == 200 and got.json()["name"] == created["name"]


def test_the_guides_cancel_verbatim(guide, local_vertex):
    http, parent = guide
    second = http.post(f"{parent}/tuningJobs", content=GUIDE_CREATE_EXAMPLE.encode(), headers=HEADERS).json()
    job_id = second["name"].rsplit("/", 1)[1]
    response = http.post(f"{parent}/tuningJobs/{job_id}:cancel", content=b"", headers=HEADERS)  # curl -d ""
    assert (response.status_code, response.json()) == (200, {})
    ended = local_vertex.wait_for_state(second["name"], {"JOB_STATE_CANCELLED", "JOB_STATE_SUCCEEDED"})
    assert ended["state"] == "JOB_STATE_CANCELLED"


def test_the_guides_prompt_verbatim_on_the_tuned_endpoint(guide, created, local_vertex):
    http, parent = guide
    job = local_vertex.wait_for_state(created["name"], {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})
    assert job["state"] == "JOB_STATE_SUCCEEDED", job.get("error")
    endpoint_id = job["tunedModel"]["endpoint"].rsplit("/", 1)[1]
    body = fill(GUIDE_PROMPT, TEMPERATURE=0.2, TOP_P=0.95, TOP_K=40, MAX_OUTPUT_TOKENS=8)
    response = http.post(f"{parent}/endpoints/{endpoint_id}:generateContent", content=body, headers=HEADERS)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["candidates"][0]["content"]["role"] == "model"
    assert answer["usageMetadata"]["candidatesTokenCount"] <= 8


def test_the_guides_create_template_is_not_json_and_is_refused_as_such(guide):
    http, parent = guide
    body = fill(GUIDE_CREATE_TEMPLATE, BASE_MODEL="gemini-1.0-pro-002", EPOCH_COUNT=2,
                ADAPTER_SIZE='"ADAPTER_SIZE_FOUR"', LEARNING_RATE_MULTIPLIER=1.0,
                TRAINING_DATASET_URI="gs://cloud-samples-data/ai-platform/generative_ai/sft_train_data.jsonl",
                VALIDATION_DATASET_URI="gs://cloud-samples-data/ai-platform/generative_ai/sft_validation_data.jsonl",
                TUNED_MODEL_DISPLAYNAME="tuned_gemini_pro")
    response = http.post(f"{parent}/tuningJobs", content=body, headers=HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "Invalid JSON payload received" in response.json()["error"]["message"]
