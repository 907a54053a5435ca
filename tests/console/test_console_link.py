"""The "Tuning console" extra link of the sensor, and what importing the console costs."""

from __future__ import annotations

import os
import subprocess
import sys

from gemini_tuning.links.console import ConsoleJobLink
from gemini_tuning.sensors.tuning_job import TuningJobSensor
from tests.conftest import PROJECT_ROOT


def test_the_sensor_links_to_its_jobs_page_in_the_console():
    sensor = TuningJobSensor(task_id="wait_for_tuning_job",
                             job_name="projects/p/locations/us-central1/tuningJobs/4242")
    assert "Tuning console" in {link.name for link in sensor.operator_extra_links}
    url = ConsoleJobLink().get_link(sensor, ti_key=None)
    assert url == "/plugin/gemini-tuning/gemini-tuning/jobs/4242"  # the console inside Airflow's frame


def test_the_link_survives_dag_serialization_as_the_api_server_reads_it():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagBag(str(PROJECT_ROOT / "dags")).dags["gemini_supervised_tuning"]
    served = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    assert "Tuning console" in served.task_dict["wait_for_tuning_job"].extra_links


def test_no_link_before_the_job_name_is_rendered():
    sensor = TuningJobSensor(task_id="wait", job_name="{{ ti.xcom_pull('create') }}")
    assert ConsoleJobLink().get_link(sensor, ti_key=None) == ""


def test_importing_the_plugin_builds_no_app_and_imports_no_web_or_client_library(tmp_path):
    """The plugins manager imports plugin.py in every Airflow process, the DAG processor too."""
    code = ("import sys; import gemini_tuning.plugin as p; "
            "print(sorted(m for m in ('fastapi', 'google.genai', 'gemini_tuning.console.api', 'gemini_tuning.hooks.tuning')"
            " if m in sys.modules)); print(p.GeminiTuningPlugin.fastapi_apps[0]['app'].__dict__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PROJECT_ROOT, env={**os.environ, "AIRFLOW_HOME": str(tmp_path),
                                                "PYTHONPATH": f"{PROJECT_ROOT}:{PROJECT_ROOT / 'plugins'}"})
    assert out.stdout.splitlines() == ["[]", "{}"], out.stdout + out.stderr
