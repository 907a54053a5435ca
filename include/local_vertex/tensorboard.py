"""A job's tuning metrics as Vertex TensorBoard resources and time-series reads.

Each job is one Tensorboard, one experiment and one run, all named after the job:

    tensorboards/{job}/experiments/{job}/runs/train/timeSeries/{series}

where {series} is the metric name without its slash (train_total_loss for /train_total_loss).
Values come back as Vertex's TimeSeriesData: scalar points with int64 steps written as strings.
"""

from __future__ import annotations

from include.local_vertex.errors import invalid_argument, not_found
from include.local_vertex.store import JobRecord, JobStore

RUN = "train"
METRICS = (
    "/train_total_loss",
    "/train_fraction_of_correct_next_step_preds",
    "/train_num_predictions",
    "/eval_total_loss",
    "/eval_fraction_of_correct_next_step_preds",
    "/eval_num_predictions",
)
SERIES_IDS = {metric.lstrip("/"): metric for metric in METRICS}
MAX_POINTS = 1000  # Vertex's limit per scalar series in one read


def experiment_path(project: str, location: str, job_id: str) -> str:
    """The job's `experiment` field: where its metrics are read."""
    return f"projects/{project}/locations/{location}/tensorboards/{job_id}/experiments/{job_id}"


def experiment_name(record: JobRecord) -> str:
    return experiment_path(record.project, record.location, record.id)


def run_name(record: JobRecord) -> str:
    return f"{experiment_name(record)}/runs/{RUN}"


def experiment_resource(record: JobRecord) -> dict:
    return {
        "name": experiment_name(record),
        "displayName": record.resource.get("tunedModelDisplayName") or record.id,
        "createTime": record.resource["createTime"],
        "updateTime": record.resource["updateTime"],
    }


def run_resource(record: JobRecord) -> dict:
    return {"name": run_name(record), "displayName": RUN, "createTime": record.resource["createTime"],
            "updateTime": record.resource["updateTime"]}


def series_resources(store: JobStore, record: JobRecord) -> list[dict]:
    resources = []
    for series_id, metric in SERIES_IDS.items():
        points = store.metric_points(record.id, metric)
        resource = {"name": f"{run_name(record)}/timeSeries/{series_id}", "displayName": metric,
                    "valueType": "SCALAR", "pluginName": "scalars",
                    "createTime": record.resource["createTime"], "updateTime": record.resource["updateTime"]}
        if points:
            resource["metadata"] = {"maxStep": str(points[-1][0]), "maxWallTime": max(p[1] for p in points)}
        resources.append(resource)
    return resources


def series_id_of(name: str, record: JobRecord) -> str:
    """The series id from a full resource name or a bare id; 404 for anything unknown."""
    prefix = f"{run_name(record)}/timeSeries/"
    series_id = name[len(prefix):] if name.startswith(prefix) else name
    if "/" in series_id:
        raise invalid_argument(f"time series {name!r} is not in this job's run ({run_name(record)})")
    if series_id not in SERIES_IDS:
        raise not_found(f"time series {name!r} not found; this run has {', '.join(SERIES_IDS)}")
    return series_id


def time_series_data(store: JobStore, record: JobRecord, series_id: str) -> dict:
    points = store.metric_points(record.id, SERIES_IDS[series_id])
    if len(points) > MAX_POINTS:  # evenly spaced, always keeping the last point
        stride = len(points) / MAX_POINTS
        points = [points[int(i * stride)] for i in range(MAX_POINTS - 1)] + [points[-1]]
    return {
        "tensorboardTimeSeriesId": series_id,
        "valueType": "SCALAR",
        "values": [{"step": str(step), "wallTime": wall_time, "scalar": {"value": value}}
                   for step, wall_time, value in points],
    }


def batch_read(store: JobStore, record: JobRecord, names: list[str]) -> dict:
    """BatchReadTensorboardTimeSeriesDataResponse for series named by resource name or id."""
    return {"timeSeriesData": [time_series_data(store, record, series_id_of(name, record)) for name in names]}
