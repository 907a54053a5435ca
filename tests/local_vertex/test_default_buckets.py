"""The storage emulator starts with the pipeline's buckets, so a fresh service needs no set-up."""

from __future__ import annotations

from include.local_vertex.storage import StorageEmulator


def test_default_buckets_exist_and_take_uploads(local_vertex):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project=local_vertex.project, credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": local_vertex.storage_url})
    assert set(StorageEmulator.DEFAULT_BUCKETS) <= {bucket.name for bucket in client.list_buckets()}
    blob = client.bucket("gemini-tuning-datasets").blob("probe/hello.txt")
    blob.upload_from_string("hello")
    assert blob.download_as_bytes() == b"hello"
