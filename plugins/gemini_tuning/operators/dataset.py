"""Operators for the dataset steps of the pipeline: validate the JSONL files, then upload them.

Both are light at import (the checks, pandas and great-expectations load in ``execute``), so a
DAG file importing them parses fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException
from gemini_tuning.jobs import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow.sdk import Context

GCS_CONN_ID = "google_cloud_default"


class ValidateTuningDatasetOperator(BaseOperator):
    """
    Check the training (and validation) JSONL as Vertex AI will, and more; fail on any error.

    The report (errors, warnings with their first line numbers, file summaries with example
    counts and classes) is returned, so the recommendation step can read the warnings; when
    the dataset is invalid the task fails without retrying (the data will not change by itself)
    after pushing the same report under the XCom key ``report``. With ``report_dir`` an HTML
    report is written there.

    :param training_dataset: Training JSONL: a local path, file:// or gs:// URI. (templated)
    :param validation_dataset: Optional validation JSONL, same forms. (templated)
    :param tuning_task: Optional classification, summarization, extractive_qa or chat: adds its checks. (templated)
    :param backend: "vertex" or "local": the local backend accepts text parts only. (templated)
    :param tokenizer: Optional tokenizer folder to count tokens with (the local model's), else estimated. (templated)
    :param report_dir: Optional folder (path, file:// or gs://) for report.html and GE's raw results. (templated)
    :param gcp_conn_id: Connection for gs:// inputs and report_dir. (templated)
    :param base_model: Optional model to be tuned: token estimates near the example limit are confirmed
        with its countTokens on the tuning connection. (templated)
    :param tuning_conn_id: The tuning connection (Vertex AI or the local service) for countTokens.
    """

    template_fields: Sequence[str] = (
        "training_dataset",
        "validation_dataset",
        "tuning_task",
        "backend",
        "tokenizer",
        "report_dir",
        "gcp_conn_id",
        "base_model",
    )
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        training_dataset: str,
        validation_dataset: str | None = None,
        tuning_task: str | None = None,
        backend: str = "vertex",
        tokenizer: str | None = None,
        report_dir: str | None = None,
        gcp_conn_id: str = GCS_CONN_ID,
        base_model: str | None = None,
        tuning_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.base_model = base_model
        self.tuning_conn_id = tuning_conn_id
        self.training_dataset = training_dataset
        self.validation_dataset = validation_dataset
        self.tuning_task = tuning_task
        self.backend = backend
        self.tokenizer = tokenizer
        self.report_dir = report_dir
        self.gcp_conn_id = gcp_conn_id

    def execute(self, context: Context) -> dict:
        from gemini_tuning.dataset_checks.tokens import backend_example_counter
        from gemini_tuning.dataset_checks.validate import validate_dataset

        report = validate_dataset(
            self.training_dataset,
            self.validation_dataset or None,
            task=self.tuning_task or None,
            backend=self.backend,
            tokenizer=self.tokenizer or None,
            report_dir=self.report_dir or None,
            gcp_conn_id=self.gcp_conn_id,
            count_tokens=backend_example_counter(self.base_model, self.tuning_conn_id) if self.base_model else None,
        )
        self.log.info("%s", report.to_text())
        result = report.to_dict()
        if not report.valid:
            context["ti"].xcom_push(key="report", value=result)
            raise AirflowFailException(report.to_text())
        return result


class UploadTuningDatasetOperator(BaseOperator):
    """
    Upload the dataset files to the run's dataset bucket under content-addressed names.

    Each file lands at ``<destination>/<sha256[:16]>/<file name>``; an object already there is
    not uploaded again, so retries and re-runs store a file once. Nothing is uploaded unless
    the dataset passed validation: pass the validation task's report (for example
    ``"{{ ti.xcom_pull(task_ids='validate_dataset') }}"`` with ``render_template_as_native_obj``,
    or the XComArg); without one the operator validates the files itself first.
    Returns ``training_dataset_uri``, ``validation_dataset_uri`` and per-file details.

    :param training_dataset: Training JSONL: a local path, file:// or gs:// URI. (templated)
    :param destination: Dataset bucket and prefix: gs://bucket/prefix or file:///root/prefix. (templated)
    :param validation_dataset: Optional validation JSONL, same forms. (templated)
    :param validation_report: Optional report returned by ValidateTuningDatasetOperator. (templated)
    :param gcp_conn_id: Connection for gs:// sources and destinations. (templated)
    """

    template_fields: Sequence[str] = (
        "training_dataset",
        "destination",
        "validation_dataset",
        "validation_report",
        "gcp_conn_id",
    )
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        training_dataset: str,
        destination: str,
        validation_dataset: str | None = None,
        validation_report: dict | None = None,
        gcp_conn_id: str = GCS_CONN_ID,
        base_model: str | None = None,
        tuning_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.base_model = base_model
        self.tuning_conn_id = tuning_conn_id
        self.training_dataset = training_dataset
        self.destination = destination
        self.validation_dataset = validation_dataset
        self.validation_report = validation_report
        self.gcp_conn_id = gcp_conn_id

    def execute(self, context: Context) -> dict:
        from gemini_tuning.dataset_checks.upload import upload_dataset

        self._require_valid()
        sources = {"training": self.training_dataset, "validation": self.validation_dataset or None}
        uploaded = {
            role: upload_dataset(source, self.destination, gcp_conn_id=self.gcp_conn_id)
            for role, source in sources.items()
            if source
        }
        return {
            "training_dataset_uri": uploaded["training"].uri,
            "validation_dataset_uri": uploaded["validation"].uri if "validation" in uploaded else None,
            "files": {role: item.to_dict() for role, item in uploaded.items()},
        }

    def _require_valid(self) -> None:
        report = self.validation_report
        if not report:
            from gemini_tuning.dataset_checks.validate import validate_dataset

            checked = validate_dataset(
                self.training_dataset, self.validation_dataset or None, gcp_conn_id=self.gcp_conn_id
            )
            self.log.info("%s", checked.to_text())
            report = checked.to_dict()
        if not isinstance(report, dict) or "valid" not in report:
            raise AirflowFailException(f"validation_report is not a dataset validation report: {report!r:.200}")
        checked_files = {summary["file"] for summary in report.get("files", [])}
        wanted = {source for source in (self.training_dataset, self.validation_dataset) if source}
        if checked_files != wanted:
            raise AirflowFailException(
                f"validation_report covers {sorted(checked_files)}, not the files to upload {sorted(wanted)}"
            )
        if not report["valid"]:
            errors = "\n".join(error["message"] for error in report.get("errors", []))
            raise AirflowFailException(f"the dataset is invalid, nothing was uploaded:\n{errors}")
