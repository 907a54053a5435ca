"""The two operators the DAG uses: validate (fails on errors, returns the report) and upload."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowFailException

from gemini_tuning.operators.dataset import UploadTuningDatasetOperator, ValidateTuningDatasetOperator

from .conftest import BUCKET, example


class RecordingTaskInstance:
    """Just enough of a task instance for execute(): records what is pushed to XCom."""

    def __init__(self) -> None:
        self.pushed: dict = {}

    def xcom_push(self, key: str, value) -> None:
        self.pushed[key] = value


def test_validate_returns_a_serialisable_report_with_warnings(write, tmp_path):
    train = write("train.jsonl", example("a"), example("a"), example("b"))
    operator = ValidateTuningDatasetOperator(
        task_id="validate", training_dataset=str(train), tuning_task="chat", report_dir=f"file://{tmp_path}/report"
    )
    result = operator.execute({"ti": RecordingTaskInstance()})
    assert json.loads(json.dumps(result)) == result
    assert result["valid"] and {w["rule"] for w in result["warnings"]} == {"duplicates", "few_examples"}
    assert result["files"][0]["examples"] == 3
    assert result["html_path"] == str(tmp_path / "report" / "report.html")
    assert (tmp_path / "report" / "report.html").read_text().count("duplicates") >= 1
    # great-expectations' own Data Docs, one page per validated batch, rendered by GE
    docs = {page.name: page.read_text() for page in (tmp_path / "report" / "data_docs").glob("*.html")}
    assert set(docs) == {"training_lines.html", "training_examples.html"}
    assert "Data documentation compiled by Great Expectations" in docs["training_examples.html"]
    assert "tuning_dataset_training_examples" in docs["training_examples.html"]


def test_validate_fails_on_an_invalid_file_and_pushes_the_report(write):
    train = write("train.jsonl", example(), '{"contents": []}')
    ti = RecordingTaskInstance()
    operator = ValidateTuningDatasetOperator(task_id="validate", training_dataset=str(train))
    with pytest.raises(AirflowFailException, match=r"\[structure\].*line 2"):
        operator.execute({"ti": ti})
    assert ti.pushed["report"]["valid"] is False


def test_nothing_is_uploaded_for_an_invalid_file(write, tmp_path):
    train = write("train.jsonl", example(), '{"contents": [{"role": "user", "parts": [{"text": "no answer"}]}]}')
    operator = UploadTuningDatasetOperator(
        task_id="upload", training_dataset=str(train), destination=f"file://{tmp_path}/bucket"
    )
    with pytest.raises(AirflowFailException, match="nothing was uploaded"):
        operator.execute({})
    assert not (tmp_path / "bucket").exists()


def test_upload_refuses_a_report_of_other_files(write, tmp_path):
    train = write("train.jsonl", example())
    report = {"valid": True, "files": [{"file": "/elsewhere/train.jsonl"}], "errors": []}
    operator = UploadTuningDatasetOperator(
        task_id="upload", training_dataset=str(train), destination=f"file://{tmp_path}/b", validation_report=report
    )
    with pytest.raises(AirflowFailException, match="not the files to upload"):
        operator.execute({})
    assert not (tmp_path / "b").exists()


def test_validate_then_upload_to_the_emulator_and_retry(storage_emulator, write):
    train = write("train.jsonl", example("a"), example("b"))
    validation = write("validation.jsonl", example("c"))
    report = ValidateTuningDatasetOperator(
        task_id="validate", training_dataset=str(train), validation_dataset=str(validation),
        report_dir=f"gs://{BUCKET}/run-1/report",
    ).execute({"ti": RecordingTaskInstance()})  # fmt: skip
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    assert report["html_path"] == f"gs://{BUCKET}/run-1/report/report.html"
    assert b"Dataset VALID" in GCSHook().download(bucket_name=BUCKET, object_name="run-1/report/report.html")
    upload = UploadTuningDatasetOperator(
        task_id="upload",
        training_dataset=str(train),
        validation_dataset=str(validation),
        destination=f"gs://{BUCKET}/run-1",
        validation_report=report,
    )
    first = upload.execute({})
    assert json.loads(json.dumps(first)) == first
    assert first["training_dataset_uri"].startswith(f"gs://{BUCKET}/run-1/")
    assert first["validation_dataset_uri"].endswith("/validation.jsonl")
    assert first["files"]["training"]["uploaded"] and first["files"]["validation"]["uploaded"]

    retried = upload.execute({})
    assert retried["training_dataset_uri"] == first["training_dataset_uri"]
    assert not retried["files"]["training"]["uploaded"] and not retried["files"]["validation"]["uploaded"]


def test_operators_declare_templated_fields():
    assert "training_dataset" in ValidateTuningDatasetOperator.template_fields
    assert {"destination", "validation_report"} <= set(UploadTuningDatasetOperator.template_fields)


def test_the_upload_stores_only_the_bytes_that_were_validated(write, tmp_path):
    """A file rewritten between validation and upload is refused, and nothing lands in the bucket."""
    train = write("train.jsonl", example("a"), example("b"))
    report = ValidateTuningDatasetOperator(task_id="validate", training_dataset=str(train)).execute(
        {"ti": RecordingTaskInstance()}
    )
    assert len(report["files"][0]["sha256"]) == 64
    train.write_text(train.read_text() + json.dumps(example("c")) + "\n")
    operator = UploadTuningDatasetOperator(
        task_id="upload", training_dataset=str(train), destination=f"file://{tmp_path}/bucket", validation_report=report
    )
    with pytest.raises(AirflowFailException, match="changed after validation"):
        operator.execute({})
    assert not (tmp_path / "bucket").exists()


def test_a_missing_file_fails_for_good_with_its_name(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(AirflowFailException, match=f"dataset not found: {missing}"):
        ValidateTuningDatasetOperator(task_id="validate", training_dataset=str(missing)).execute(
            {"ti": RecordingTaskInstance()}
        )


@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["empty", "blank-lines-only"])
def test_an_empty_or_blank_only_dataset_is_invalid(tmp_path, content):
    train = tmp_path / "train.jsonl"
    train.write_text(content)
    operator = ValidateTuningDatasetOperator(task_id="validate", training_dataset=str(train))
    with pytest.raises(AirflowFailException, match=r"\[no_examples\]"):
        operator.execute({"ti": RecordingTaskInstance()})
