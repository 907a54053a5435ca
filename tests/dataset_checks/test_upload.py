"""Content-addressed upload: file:// through ObjectStoragePath, gs:// through GCSHook on a real emulator."""

from __future__ import annotations

import hashlib

import pytest

from gemini_tuning.dataset_checks.source import DatasetInputError
from gemini_tuning.dataset_checks.upload import upload_dataset
from gemini_tuning.dataset_checks.validate import validate_dataset

from .conftest import BUCKET, example


def test_file_upload_is_content_addressed_and_stored_once(write, tmp_path):
    source = write("train.jsonl", example("a"), example("b"))
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    destination = f"file://{tmp_path}/bucket/datasets"

    first = upload_dataset(str(source), destination)
    assert first.uploaded and first.sha256 == sha
    assert first.uri == f"file://{tmp_path}/bucket/datasets/{sha[:16]}/train.jsonl"
    stored = tmp_path / "bucket" / "datasets" / sha[:16] / "train.jsonl"
    assert stored.read_bytes() == source.read_bytes()
    modified = stored.stat().st_mtime_ns

    second = upload_dataset(f"file://{source}", destination)
    assert not second.uploaded and second.uri == first.uri
    assert stored.stat().st_mtime_ns == modified
    assert [p.name for p in stored.parent.iterdir()] == ["train.jsonl"]  # no partial file left


def test_changed_content_gets_a_new_name(write, tmp_path):
    destination = f"file://{tmp_path}/bucket"
    first = upload_dataset(str(write("train.jsonl", example("a"))), destination)
    second = upload_dataset(str(write("train.jsonl", example("changed"))), destination)
    assert second.uploaded and second.uri != first.uri


def test_missing_input_names_the_path(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DatasetInputError, match=f"dataset not found: {missing} \\(no such file\\)"):
        upload_dataset(str(missing), f"file://{tmp_path}/bucket")
    with pytest.raises(DatasetInputError, match=f"dataset not found: file://{tmp_path} \\(a directory"):
        validate_dataset(f"file://{tmp_path}")


def test_unsupported_destination(write):
    with pytest.raises(ValueError, match="unsupported dataset destination 's3://b'"):
        upload_dataset(str(write("train.jsonl", example())), "s3://b")


def test_gcs_upload_through_gcshook_on_the_emulator(storage_emulator, write):
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    source = write("train.jsonl", example("a"), example("b"))
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    first = upload_dataset(str(source), f"gs://{BUCKET}/runs/r1")
    assert first.uploaded and first.uri == f"gs://{BUCKET}/runs/r1/{sha[:16]}/train.jsonl"
    hook = GCSHook()
    assert hook.download(bucket_name=BUCKET, object_name=f"runs/r1/{sha[:16]}/train.jsonl") == source.read_bytes()

    second = upload_dataset(str(source), f"gs://{BUCKET}/runs/r1")
    assert not second.uploaded and second.uri == first.uri
    assert hook.list(BUCKET, prefix="runs/r1/") == [f"runs/r1/{sha[:16]}/train.jsonl"]

    # A gs:// input is validated and uploaded through the hook too, and keeps its name and hash.
    report = validate_dataset(first.uri)
    assert report.valid and report.files[0].file == first.uri and report.files[0].examples == 2
    copied = upload_dataset(first.uri, f"gs://{BUCKET}/copies")
    assert copied.sha256 == sha and copied.uri == f"gs://{BUCKET}/copies/{sha[:16]}/train.jsonl"


def test_missing_gcs_input_names_the_uri(storage_emulator, tmp_path):
    with pytest.raises(DatasetInputError, match=f"dataset not found: gs://{BUCKET}/absent.jsonl"):
        upload_dataset(f"gs://{BUCKET}/absent.jsonl", f"file://{tmp_path}/bucket")
