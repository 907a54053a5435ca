"""Registers the package's operator extra links and its run-failed listener with Airflow's plugins manager."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from gemini_tuning.links.tuning_job import TuningJobLink
from gemini_tuning.listeners import RunFailedListener


class GeminiTuningPlugin(AirflowPlugin):
    name = "gemini_tuning"
    operator_extra_links = [TuningJobLink()]
    listeners = [RunFailedListener()]
