"""Operator extra link from a task that watched a tuning job to the job's page in the tuning console."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class ConsoleJobLink(BaseOperatorLink):
    """
    "Tuning console" button: the job's page in the Airflow UI's Gemini tuning console.

    Airflow computes it in the worker when the task stops running (it defers, or ends), from the
    task's rendered ``job_name``, and keeps it in XCom: the UI shows it while the job trains.
    """

    name: ClassVar[str] = "Tuning console"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from urllib.parse import quote, urlparse

        from airflow.sdk.configuration import conf
        from gemini_tuning.console import job_page_path

        job_name = str(getattr(operator, "job_name", "") or "")
        if not job_name or "{{" in job_name:  # not rendered: the task has not run
            return ""
        ui_root = urlparse(conf.get("api", "base_url", fallback="")).path.rstrip("/")
        return ui_root + job_page_path(quote(job_name.rstrip("/").rsplit("/", 1)[-1], safe=""))
