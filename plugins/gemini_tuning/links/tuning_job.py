"""Operator extra link from a task to the tuning job it created or watched."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey


class TuningJobLink(BaseOperatorLink):
    """
    "Tuning job" button: the Vertex console page of the job, or the local service's job URL.

    The hook decides the URL (only it knows the backend); the task pushes it with ``persist``.
    """

    name: ClassVar[str] = "Tuning job"
    key: ClassVar[str] = "tuning_job_url"

    @property
    def xcom_key(self) -> str:
        return self.key

    @classmethod
    def persist(cls, context: Context, url: str) -> None:
        context["ti"].xcom_push(key=cls.key, value=url)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(key=self.key, ti_key=ti_key) or ""
