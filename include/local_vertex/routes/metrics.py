"""A job's metrics as Vertex TensorBoard reads (experiment, runs, time series, batchRead)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from include.local_vertex import tensorboard
from include.local_vertex.errors import invalid_argument, not_found
from include.local_vertex.routes.context import PARENT, Service
from include.local_vertex.store import JobRecord
from include.local_vertex.wire import json_response

_TENSORBOARD = PARENT + "/tensorboards/{tensorboard_id}"
_RUN = _TENSORBOARD + "/experiments/{experiment_id}/runs/{run_id}"


def router(service: Service) -> APIRouter:
    routes = APIRouter()
    store = service.store

    def job_of_tensorboard(project, location, tensorboard_id, experiment_id=None, run_id=None) -> JobRecord:
        record = service.find_job(project, location, tensorboard_id, "tensorboards")
        if experiment_id not in (None, tensorboard_id):
            raise not_found(f"experiment {experiment_id} not found in tensorboard {tensorboard_id}")
        if run_id not in (None, tensorboard.RUN):
            raise not_found(f"run {run_id} not found; this experiment has the run {tensorboard.RUN!r}")
        return record

    @routes.get(_TENSORBOARD + ":batchRead")
    async def batch_read(project: str, location: str, tensorboard_id: str,
                         time_series: list[str] = Query([], alias="timeSeries")):
        record = job_of_tensorboard(project, location, tensorboard_id)
        if not time_series:
            raise invalid_argument("timeSeries is required: the resource names of the series to read")
        return json_response(tensorboard.batch_read(store, record, time_series))

    @routes.get(_TENSORBOARD + "/experiments/{experiment_id}")
    async def get_experiment(project: str, location: str, tensorboard_id: str, experiment_id: str):
        record = job_of_tensorboard(project, location, tensorboard_id, experiment_id)
        return json_response(tensorboard.experiment_resource(record))

    @routes.get(_TENSORBOARD + "/experiments/{experiment_id}/runs")
    async def list_runs(project: str, location: str, tensorboard_id: str, experiment_id: str):
        record = job_of_tensorboard(project, location, tensorboard_id, experiment_id)
        return json_response({"tensorboardRuns": [tensorboard.run_resource(record)]})

    @routes.get(_RUN + "/timeSeries")
    async def list_time_series(project: str, location: str, tensorboard_id: str, experiment_id: str, run_id: str):
        record = job_of_tensorboard(project, location, tensorboard_id, experiment_id, run_id)
        return json_response({"tensorboardTimeSeries": tensorboard.series_resources(store, record)})

    @routes.get(_RUN + "/timeSeries:batchRead")
    async def batch_read_run(project: str, location: str, tensorboard_id: str, experiment_id: str, run_id: str,
                             time_series: list[str] = Query([], alias="timeSeries")):
        """All of the run's series when none are named (the shortest way to get a job's curves)."""
        record = job_of_tensorboard(project, location, tensorboard_id, experiment_id, run_id)
        return json_response(tensorboard.batch_read(store, record, time_series or list(tensorboard.SERIES_IDS)))

    @routes.get(_RUN + "/timeSeries/{series_id}:read")
    async def read_time_series(project: str, location: str, tensorboard_id: str, experiment_id: str,
                               run_id: str, series_id: str):
        record = job_of_tensorboard(project, location, tensorboard_id, experiment_id, run_id)
        return json_response({"timeSeriesData": tensorboard.time_series_data(
            store, record, tensorboard.series_id_of(series_id, record))})

    return routes
