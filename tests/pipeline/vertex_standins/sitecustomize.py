"""Stand-ins for the two parts of Google's cloud that a Vertex-configured pipeline reaches besides Vertex's REST API.

This folder is prepended to PYTHONPATH of the `airflow dags test` subprocess in
tests/pipeline/test_vertex_configuration.py, so Python imports this module at start-up. Nothing
of the pipeline is replaced; only what lives in Google's cloud and is unreachable offline:

- Google's OAuth token endpoint: a service-account key's ``Credentials.refresh`` gets the static
  access token VERTEX_STANDIN_ACCESS_TOKEN instead of asking oauth2.googleapis.com.
- Vertex Experiments (metadata + TensorBoard through google-cloud-aiplatform):
  ``aiplatform.ExperimentRun.list`` returns runs whose ``get_time_series_data_frame()`` builds
  the frame aiplatform would (columns step, wall_time and one per series display name) from the
  local service's TensorBoard batchRead of the job's experiment (VERTEX_STANDIN_SERIES_URL, with
  its own token VERTEX_STANDIN_SERIES_TOKEN). Each call is logged as a JSON line to
  VERTEX_STANDIN_CALLS so the test can check what the pipeline asked for.

Both modules are patched right after their first import (an import hook), so a process that
never uses them pays nothing: google.cloud.aiplatform alone takes seconds to import.
"""

from __future__ import annotations

import datetime
import importlib.abc
import importlib.machinery
import json
import os
import sys


def _log_call(record: dict) -> None:
    with open(os.environ["VERTEX_STANDIN_CALLS"], "a") as log:
        log.write(json.dumps(record) + "\n")


# -- Google's token endpoint ---------------------------------------------------------------------

def _refresh_with_static_token(self, request) -> None:
    """What a successful token exchange leaves on the credentials: an access token valid for an hour."""
    self.token = os.environ["VERTEX_STANDIN_ACCESS_TOKEN"]
    self.expiry = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(hours=1)


def _patch_service_account(module) -> None:
    module.Credentials.refresh = _refresh_with_static_token


# -- Vertex Experiments --------------------------------------------------------------------------

class ExperimentRunStandIn:
    """One run of a tuning job's experiment; the local service names tensorboard, experiment and job alike."""

    def __init__(self, experiment: str, project: str, location: str):
        self.name = "train"
        self.series_path = (f"/v1/projects/{project}/locations/{location}/tensorboards/{experiment}"
                            f"/experiments/{experiment}/runs/{self.name}/timeSeries:batchRead")

    def get_time_series_data_frame(self):
        """aiplatform's frame: one row per (step, wall_time), one column per series display name."""
        import httpx
        import pandas as pd

        response = httpx.get(os.environ["VERTEX_STANDIN_SERIES_URL"] + self.series_path, timeout=60,
                             headers={"Authorization": f"Bearer {os.environ['VERTEX_STANDIN_SERIES_TOKEN']}"})
        response.raise_for_status()
        points = [
            {"/" + series["tensorboardTimeSeriesId"]: point["scalar"]["value"],
             "step": int(point["step"]), "wall_time": pd.Timestamp(point["wallTime"])}
            for series in response.json().get("timeSeriesData", [])
            for point in series.get("values", [])
        ]
        if not points:
            return pd.DataFrame({})
        return pd.DataFrame(points).groupby(["step", "wall_time"]).first().reset_index()


def _list_experiment_runs(cls, *, experiment=None, project=None, location=None, credentials=None):
    _log_call({"call": "ExperimentRun.list", "experiment": experiment, "project": project, "location": location,
               "credentials": f"{type(credentials).__module__}.{type(credentials).__qualname__}",
               "token": getattr(credentials, "token", None)})
    return [ExperimentRunStandIn(experiment, project, location)]


def _patch_aiplatform(module) -> None:
    module.ExperimentRun.list = classmethod(_list_experiment_runs)


# -- patching right after import -----------------------------------------------------------------

class PatchAfterImport(importlib.abc.MetaPathFinder):
    """Runs ``patch(module)`` once a module has been executed by its real loader."""

    def __init__(self, name: str, patch):
        self.name = name
        self.patch = patch

    def find_spec(self, name, path, target=None):
        if name != self.name:
            return None
        sys.meta_path.remove(self)  # one module, once
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        execute, patch = spec.loader.exec_module, self.patch

        def exec_module(module):
            execute(module)
            patch(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, PatchAfterImport("google.oauth2.service_account", _patch_service_account))
sys.meta_path.insert(0, PatchAfterImport("google.cloud.aiplatform", _patch_aiplatform))
