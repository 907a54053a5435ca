"""Fixtures of the gemini_tuning tests: the connection to the local service, datasets in its storage."""

from __future__ import annotations

import json
import os
import uuid
from urllib.parse import quote

import httpx
import pytest

from tests.gemini_tuning.helpers import sample_lines

CONN_ENV = "AIRFLOW_CONN_GEMINI_TUNING_DEFAULT"


@pytest.fixture(scope="session")
def tuning_connection(local_vertex):
    """`gemini_tuning_default` pointing at the local service, as the DAGs' deployments configure it."""
    previous = os.environ.get(CONN_ENV)
    os.environ[CONN_ENV] = json.dumps(
        {
            "conn_type": "google_cloud_platform",
            "password": local_vertex.token,
            "extra": {
                "project": local_vertex.project,
                "location": local_vertex.location,
                "base_url": local_vertex.base_url,
            },
        }
    )
    yield local_vertex
    if previous is None:
        os.environ.pop(CONN_ENV, None)
    else:
        os.environ[CONN_ENV] = previous


class Bucket:
    """A bucket of the local service's storage emulator, written through its JSON API."""

    def __init__(self, storage_url: str, name: str):
        self.storage_url = storage_url
        self.name = name
        httpx.post(f"{storage_url}/storage/v1/b", json={"name": name}, timeout=30).raise_for_status()

    def upload(self, path: str, text: str) -> str:
        httpx.post(
            f"{self.storage_url}/upload/storage/v1/b/{self.name}/o",
            params={"uploadType": "media", "name": path},
            content=text.encode(),
            timeout=30,
        ).raise_for_status()
        return f"gs://{self.name}/{path}"

    def download(self, path: str) -> bytes:
        response = httpx.get(
            f"{self.storage_url}/download/storage/v1/b/{self.name}/o/{quote(path, safe='')}",
            params={"alt": "media"},
            timeout=30,
        )
        response.raise_for_status()
        return response.content


@pytest.fixture(scope="session")
def bucket(tuning_connection) -> Bucket:
    return Bucket(tuning_connection.storage_url, f"gemini-tuning-tests-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session")
def datasets(bucket) -> dict[str, str]:
    """A small training and validation set (a few seconds of tuning on the tiny model)."""
    return {
        "train": bucket.upload("small/train.jsonl", "\n".join(sample_lines("train.jsonl", 32)) + "\n"),
        "validation": bucket.upload("small/validation.jsonl", "\n".join(sample_lines("validation.jsonl", 8)) + "\n"),
    }
