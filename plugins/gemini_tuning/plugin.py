"""Registers the package's operator extra links with Airflow's plugins manager."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from gemini_tuning.links.tuning_job import TuningJobLink


class GeminiTuningPlugin(AirflowPlugin):
    name = "gemini_tuning"
    operator_extra_links = [TuningJobLink()]
