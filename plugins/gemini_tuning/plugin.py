"""Registers the package's operator extra links, its listeners (run marked failed, tuning-jobs
pool) and the tuning console with Airflow's plugins manager."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from gemini_tuning import console
from gemini_tuning.links.console import ConsoleJobLink
from gemini_tuning.links.tuning_job import TuningJobLink
from gemini_tuning.listeners import RunFailedListener, TuningJobsPoolListener


class GeminiTuningPlugin(AirflowPlugin):
    name = "gemini_tuning"
    operator_extra_links = [TuningJobLink(), ConsoleJobLink()]
    listeners = [RunFailedListener(), TuningJobsPoolListener()]
    # The console: its app is served by the API server, and shown in the UI's navigation.
    fastapi_apps = [{"app": console.app, "url_prefix": console.URL_PREFIX, "name": "Gemini tuning console"}]
    external_views = [
        {
            "name": "Gemini tuning",
            "href": console.URL_PREFIX + "/",
            "url_route": console.VIEW_ROUTE,
            "destination": "nav",
            "category": "browse",
        }
    ]
