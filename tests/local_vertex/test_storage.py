"""gs:// datasets: uploaded with google-cloud-storage and with Airflow's GCSHook to the service's
storage emulator, then tuned from by URI."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.local_vertex import chat_rows

pytestmark = pytest.mark.slow


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def test_upload_with_gcs_clients_then_tune_from_gs(local_vertex, monkeypatch):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project=local_vertex.project, credentials=AnonymousCredentials())
    bucket = client.create_bucket("tuning-data")
    bucket.blob("sft/train.jsonl").upload_from_string(_jsonl(chat_rows(16)))

    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
                       json.dumps({"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True}}))
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    hook = GCSHook(gcp_conn_id="google_cloud_default")
    hook.upload("tuning-data", "sft/validation.jsonl", data=_jsonl(chat_rows(8)))
    assert hook.exists("tuning-data", "sft/train.jsonl")

    # The emulator keeps its objects on disk, under the service's data dir.
    stored = {path.relative_to(local_vertex.data_dir / "storage").as_posix()
              for path in (local_vertex.data_dir / "storage").rglob("*.jsonl")}
    assert {".cloudstorage/tuning-data/sft/train.jsonl", ".cloudstorage/tuning-data/sft/validation.jsonl"} <= stored

    from google.genai import types

    genai = local_vertex.genai_client()
    job = genai.tunings.tune(
        base_model="gemini-2.5-flash",
        training_dataset=types.TuningDataset(gcs_uri="gs://tuning-data/sft/train.jsonl"),
        config=types.CreateTuningJobConfig(
            epoch_count=1,
            validation_dataset=types.TuningValidationDataset(gcs_uri="gs://tuning-data/sft/validation.jsonl"),
        ),
    )
    done = local_vertex.wait_for_state(job.name, {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})
    assert done["state"] == "JOB_STATE_SUCCEEDED", done.get("error")
    assert done["tuningDataStats"]["supervisedTuningDataStats"]["tuningDatasetExampleCount"] == "16"  # int64


def test_a_missing_object_is_refused_at_create(local_vertex):
    from google.genai import errors, types

    genai = local_vertex.genai_client()
    with pytest.raises(errors.ClientError) as raised:
        genai.tunings.tune(base_model="gemini-2.5-flash",
                           training_dataset=types.TuningDataset(gcs_uri="gs://tuning-data/missing.jsonl"))
    assert raised.value.code == 400 and "gs://tuning-data/missing.jsonl" in raised.value.message


def test_unusable_data_fails_the_job_with_file_and_line(local_vertex):
    uri = local_vertex.write_dataset("broken.jsonl", [chat_rows(1)[0], {"contents": "not a list"}])
    with local_vertex.http() as http:
        job = http.post(f"/v1/{local_vertex.parent}/tuningJobs", json={
            "baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": uri}}).json()
    failed = local_vertex.wait_for_state(job["name"], {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"})
    assert failed["state"] == "JOB_STATE_FAILED"
    assert failed["error"]["code"] == 3
    assert "broken.jsonl" in failed["error"]["message"] and "line 2" in failed["error"]["message"]


def test_a_gs_object_replaced_after_create_is_not_trained_on(local_vertex, tmp_path):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from include.local_vertex.config import ServiceConfig
    from include.local_vertex.datasets import DatasetChanged, check_dataset_uri, local_dataset_file

    blob = storage.Client(project=local_vertex.project, credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": local_vertex.storage_url}
                          ).bucket("gemini-tuning-datasets").blob("pinned/train.jsonl")
    blob.upload_from_string(_jsonl(chat_rows(4)))
    config = ServiceConfig(data_dir=tmp_path / "service", storage_port=local_vertex.storage_port)
    uri = "gs://gemini-tuning-datasets/pinned/train.jsonl"
    pin = check_dataset_uri(uri, config, field="trainingDatasetUri")
    assert pin["generation"] and pin["md5Hash"]
    assert local_dataset_file(uri, config, tmp_path / "copy.jsonl", field="f", pin=pin).read_text() == _jsonl(chat_rows(4))

    blob.upload_from_string(_jsonl(chat_rows(5)))
    with pytest.raises(DatasetChanged, match="changed after the job was created"):
        local_dataset_file(uri, config, tmp_path / "copy.jsonl", field="f", pin=pin)
