"""Connection arguments shared by every operator that talks to the tuning service."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

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
