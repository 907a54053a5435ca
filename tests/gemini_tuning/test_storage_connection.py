"""Every gs:// read and write of the archive and the smoke test goes through the configured connection.

Against the local storage emulator: the default connection (anonymous there) works; pointing
that same connection at a missing key file must make the very same calls fail, naming the file,
which shows the connection is used rather than the bare default credentials.
"""

from __future__ import annotations

import json

import pytest

from gemini_tuning.prompts import load_smoke_prompts
from tests.gemini_tuning.test_operators import _archive

KEY_FILE = "/nonexistent/service-account.json"


@pytest.fixture
def prompts_in_bucket(bucket) -> str:
    return bucket.upload("storage-conn/prompts.jsonl", json.dumps({"prompt": "q", "expected": "a"}) + "\n")


def test_gs_reads_and_writes_work_through_google_cloud_default(bucket, prompts_in_bucket, tmp_path):
    assert [p.expected for p in load_smoke_prompts(prompts_file=prompts_in_bucket)] == ["a"]
    written = _archive(tmp_path, archive_prefix=f"gs://{bucket.name}/storage-conn/run")
    assert written["summary.json"] == f"gs://{bucket.name}/storage-conn/run/summary.json"
    assert json.loads(bucket.download("storage-conn/run/summary.json"))["job"]["state"] == "JOB_STATE_SUCCEEDED"


def test_a_key_file_connection_is_the_one_used(bucket, prompts_in_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
        json.dumps({"conn_type": "google_cloud_platform", "extra": {"project": "p", "key_path": KEY_FILE}}),
    )
    with pytest.raises(FileNotFoundError, match=KEY_FILE):
        load_smoke_prompts(prompts_file=prompts_in_bucket)
    with pytest.raises(FileNotFoundError, match=KEY_FILE):
        _archive(tmp_path, archive_prefix=f"gs://{bucket.name}/storage-conn/keyfile-run")
