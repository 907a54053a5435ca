"""Connection arguments shared by every operator that talks to the tuning service."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperator
from gemini_tuning.jobs import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from gemini_tuning.hooks.tuning import GenAITuningHook


class GenAITuningBaseOperator(BaseOperator):
    """
    Base for the tuning operators: builds the hook from the connection arguments.

    :param gcp_conn_id: Connection to the tuning service (Vertex AI or the local service). (templated)
    :param project_id: Overrides the connection's project. (templated)
    :param location: Overrides the connection's location (the tuning job's region). (templated)
    :param impersonation_chain: Optional service account(s) to impersonate, Vertex only. (templated)
    """

    connection_fields: Sequence[str] = ("gcp_conn_id", "project_id", "location", "impersonation_chain")

    def __init__(
        self,
        *,
        gcp_conn_id: str = DEFAULT_CONN_ID,
        project_id: str | None = None,
        location: str | None = None,
        impersonation_chain: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gcp_conn_id = gcp_conn_id
        self.project_id = project_id
        self.location = location
        self.impersonation_chain = impersonation_chain

    @cached_property
    def hook(self) -> GenAITuningHook:
        # Imported here: the hook needs the Google provider, which DAG files should not pay for.
        from gemini_tuning.hooks.tuning import GenAITuningHook

        return GenAITuningHook(
            gcp_conn_id=self.gcp_conn_id,
            impersonation_chain=self.impersonation_chain,
            project_id=self.project_id,
            location=self.location,
        )

    def defer_until_job_ends(
        self,
        job_name: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 10.0,
        max_poll_interval: float = 300.0,
        backoff_factor: float = 1.5,
        max_transient_errors: int = 5,
        cancel_on_timeout: bool = True,
        cancel_on_kill: bool = True,
    ) -> NoReturn:
        """Hand the task to the triggerer until the job ends; it resumes in ``execute_complete``.

        ``timeout`` (seconds from now) gives up the wait, cancelling the job if ``cancel_on_timeout``;
        a user killing the deferred task cancels it if ``cancel_on_kill``.
        """
        from gemini_tuning.triggers.tuning_job import TuningJobTrigger  # needs the hook: not at parse time

        self.defer(
            trigger=TuningJobTrigger(
                job_name=job_name,
                conn_id=self.gcp_conn_id,
                impersonation_chain=self.impersonation_chain,
                project_id=self.project_id,
                location=self.location,
                poll_interval=poll_interval,
                max_poll_interval=max_poll_interval,
                backoff_factor=backoff_factor,
                max_transient_errors=max_transient_errors,
                deadline=None if timeout is None else time.time() + timeout,
                cancel_on_timeout=cancel_on_timeout,
                cancel_on_kill=cancel_on_kill,
            ),
            method_name="execute_complete",
        )
