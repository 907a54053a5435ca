"""
The "Gemini tuning" console inside the Airflow UI: jobs, a job's live curves, cancel, try the model.

A FastAPI app that Airflow's API server mounts under ``URL_PREFIX`` (plugin ``fastapi_apps``),
shown in the UI's navigation as an external view (an iframe). Its pages are plain HTML, CSS and
JavaScript from ``static/``; its API talks to the backend through the project's hook and the
``gemini_tuning_default`` connection, and answers only users logged in to Airflow.

The plugins manager imports this package in every Airflow process, the DAG processor included,
so the app is built on its first request: importing it costs nothing.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

URL_PREFIX = "/gemini-tuning"
VIEW_ROUTE = "gemini-tuning"  # the UI shows the console at /plugin/<VIEW_ROUTE>/...


class LazyConsoleApp:
    """An ASGI app that builds the real one (FastAPI, the hook's imports) when it is first called."""

    @cached_property
    def app(self) -> Any:
        from gemini_tuning.console.api import create_app

        return create_app()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def job_page_path(job_id: str) -> str:
    """The UI path of a job's page, inside Airflow's frame (the UI maps /plugin/<route>/<path> to <path>)."""
    return f"/plugin/{VIEW_ROUTE}{URL_PREFIX}/jobs/{job_id}"


app = LazyConsoleApp()
