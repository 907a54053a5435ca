"""Archive of a tuning run: the six metric series as data and curves, and a summary of the job."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemini_tuning.dataset_checks.source import GCS_CONN_ID
from gemini_tuning.jobs import job_to_dict
from gemini_tuning.operators.base import GenAITuningBaseOperator

if TYPE_CHECKING:
    import pandas as pd

    from airflow.sdk import Context

METRICS_COLUMNS = ["metric", "step", "value", "wall_time"]
CONTENT_TYPES = {
    ".json": "application/json",
    ".csv": "text/csv",
    ".png": "image/png",
    ".parquet": "application/vnd.apache.parquet",
}
# (panel title, y label, train series, eval series) of the PNG.
CURVES = (
    ("Loss", "total loss", "/train_total_loss", "/eval_total_loss"),
    (
        "Next-token accuracy",
        "fraction correct",
        "/train_fraction_of_correct_next_step_preds",
        "/eval_fraction_of_correct_next_step_preds",
    ),
)


def archive_uri(prefix: str, name: str) -> str:
    """Where file ``name`` of an archive goes: under a gs:// or file:// prefix, or a local folder."""
    if "://" not in prefix:
        prefix = Path(prefix).resolve().as_uri()
    return f"{prefix.rstrip('/')}/{name}"


def metrics_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Tidy frame, one row per metric and step: metric (str), step (int), value (float), wall_time (UTC)."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=METRICS_COLUMNS)
    frame["metric"] = frame["metric"].astype("string")
    frame["step"] = frame["step"].astype("int64")
    frame["value"] = frame["value"].astype("float64")
    frame["wall_time"] = pd.to_datetime(frame["wall_time"], utc=True, format="ISO8601")
    return frame.sort_values(["metric", "step"], ignore_index=True)


def final_metrics(frame: pd.DataFrame) -> dict[str, dict[str, float | int]]:
    """Each series' last point: ``{metric: {"step": ..., "value": ...}}``."""
    last = frame.groupby("metric", sort=True).tail(1)
    return {row.metric: {"step": int(row.step), "value": float(row.value)} for row in last.itertuples()}


def plot_curves(
    frame: pd.DataFrame, title: str, checkpoints: list[dict[str, Any]] = (), chosen: str | None = None
) -> bytes:
    """PNG of the loss and accuracy curves, train and eval, against the step; each checkpoint is a
    dotted line at its step, the chosen one (``chosen``: its checkpoint id) a solid red one."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or state in a worker

    figure = Figure(figsize=(11, 4), layout="constrained")
    figure.suptitle(title)
    for axes, (panel, y_label, train, evaluation) in zip(figure.subplots(1, len(CURVES)), CURVES):
        for metric, label, style in ((train, "train", "-"), (evaluation, "eval", "o-")):
            series = frame[frame["metric"] == metric]
            if not series.empty:
                axes.plot(series["step"], series["value"], style, label=label, markersize=4)
        for checkpoint in (c for c in checkpoints if c.get("step") is not None):
            is_chosen = chosen is not None and str(checkpoint["checkpoint_id"]) == str(chosen)
            axes.axvline(checkpoint["step"], color="tab:red" if is_chosen else "grey",
                         linestyle="-" if is_chosen else ":", linewidth=1.6 if is_chosen else 1.0,
                         label=f"chosen: checkpoint {checkpoint['checkpoint_id']}" if is_chosen else None)
            axes.annotate(f"checkpoint {checkpoint['checkpoint_id']} (epoch {checkpoint['epoch']})",
                          (checkpoint["step"], 0.5), xycoords=("data", "axes fraction"), xytext=(-3, 0),
                          textcoords="offset points", rotation=90, ha="right", va="center", fontsize=7,
                          color="tab:red" if is_chosen else "dimgrey")
        axes.set(title=panel, xlabel="step", ylabel=y_label)
        axes.grid(alpha=0.3)
        if axes.has_data():
            axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


class ArchiveTuningMetricsOperator(GenAITuningBaseOperator):
    """
    Write a tuning job's metrics and summary under an archive prefix; returns the written URIs.

    Files: ``metrics.parquet`` and ``metrics.csv`` (tidy: metric, step, value, wall_time),
    ``curves.png`` (loss and accuracy, train and eval) and ``summary.json`` (job resource,
    hyperparameters used, data stats, final metrics, smoke-test scores). The smoke test's scores
    are read from the file it wrote, when it got that far: the archive of a good job never
    depends on the smoke test having run to the end.

    :param tuning_job_name: The tuning job whose metrics are archived. (templated)
    :param archive_prefix: Folder for the files: gs://bucket/path, file:///path or a local path. (templated)
    :param smoke_test_results_uri: The smoke test's results file, if any; a missing one is noted. (templated)
    :param run_summary: More of the run to keep in the summary (recommendation, dataset...), if any. (templated)
    :param chosen_checkpoint_id: The checkpoint the run chose, marked on the curves, if any. (templated)
    :param storage_conn_id: Connection for gs:// archives (with the operator's ``impersonation_chain``).
    """

    template_fields: Sequence[str] = (
        *GenAITuningBaseOperator.connection_fields,
        "tuning_job_name",
        "archive_prefix",
        "smoke_test_results_uri",
        "run_summary",
        "chosen_checkpoint_id",
    )

    def __init__(
        self,
        *,
        tuning_job_name: str,
        archive_prefix: str,
        smoke_test_results_uri: str | None = None,
        run_summary: dict[str, Any] | None = None,
        chosen_checkpoint_id: str | None = None,
        storage_conn_id: str = GCS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_summary = run_summary
        self.chosen_checkpoint_id = chosen_checkpoint_id
        self.tuning_job_name = tuning_job_name
        self.archive_prefix = archive_prefix
        self.smoke_test_results_uri = smoke_test_results_uri
        self.storage_conn_id = storage_conn_id

    def execute(self, context: Context) -> dict[str, str]:
        job = self.hook.get_tuning_job(self.tuning_job_name)
        frame = metrics_frame(self.hook.read_metric_series(job))
        self.log.info("Tuning job %s: %d metric points in %d series", job.name, len(frame), frame["metric"].nunique())
        resource = job_to_dict(job)
        checkpoints = self.hook.list_checkpoints(job)
        chosen = None if self.chosen_checkpoint_id in (None, "") else str(self.chosen_checkpoint_id)
        summary = {
            "job": resource,
            "hyperparameters": resource.get("supervisedTuningSpec", {}).get("hyperParameters", {}),
            "data_stats": resource.get("tuningDataStats", {}).get("supervisedTuningDataStats", {}),
            "final_metrics": final_metrics(frame),
            "checkpoints": checkpoints,
            "chosen_checkpoint_id": chosen,
            "smoke_test": self._smoke_test_results(),
            "run_summary": self.run_summary or None,
        }
        parquet = io.BytesIO()
        frame.to_parquet(parquet, index=False)
        title = f"{job.tuned_model_display_name or job.name}: {job.name.rsplit('/', 1)[-1]}"
        files = {
            "metrics.parquet": parquet.getvalue(),
            "metrics.csv": frame.to_csv(index=False).encode(),
            "curves.png": plot_curves(frame, title, checkpoints, chosen),
            "summary.json": json.dumps(summary, indent=2, default=str).encode(),
        }
        return {name: self._write(name, data) for name, data in files.items()}

    def _smoke_test_results(self) -> dict[str, Any] | None:
        """The smoke test's scores without the answers (those stay in its own file), or None."""
        from gemini_tuning.dataset_checks.source import DatasetInputError, read_text

        if not self.smoke_test_results_uri:
            return None
        try:
            results = json.loads(
                read_text(
                    str(self.smoke_test_results_uri),
                    gcp_conn_id=self.storage_conn_id,
                    impersonation_chain=self.impersonation_chain,
                )
            )
        except DatasetInputError:
            self.log.warning(
                "No smoke-test results at %s: the smoke test did not get that far", self.smoke_test_results_uri
            )
            return None
        results.pop("examples", None)
        return results

    def _write(self, name: str, data: bytes) -> str:
        from gemini_tuning.dataset_checks.source import write_file

        uri = archive_uri(self.archive_prefix, name)
        written = write_file(
            uri,
            data,
            content_type=CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream"),
            gcp_conn_id=self.storage_conn_id,
            impersonation_chain=self.impersonation_chain,
        )
        self.log.info("Wrote %s (%d bytes)", uri, len(data))
        return uri if "://" in uri else Path(written).resolve().as_uri()
