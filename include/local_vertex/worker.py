"""One tuning job in its own process: resolve the data, fill the hyperparameters, train.

The scheduler starts `python -m include.local_vertex.worker --job-id ID ...` for a job in
JOB_STATE_PENDING. The worker owns the job's state from then on until it ends it (SUCCEEDED,
FAILED, CANCELLED); if the worker dies instead, the scheduler ends it with the reason.
A SIGTERM or SIGINT (service shutdown, or the parent died) stops the worker in whatever phase
it is (model conversion, download, tokenizing, hashing, training, saving) and leaves the job
active, so that the next start of the service resumes it from its last checkpoint: every file
the job writes appears by rename, so a stop at any moment leaves nothing half-written behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from include.local_vertex.base_models import local_base_model
from include.local_vertex.checkpoints import add_checkpoint, checkpoint_epochs
from include.local_vertex.config import ServiceConfig, config_from_worker_settings
from include.local_vertex.datasets import DatasetChanged, DatasetUriError, local_dataset_file
from include.local_vertex.errors import cancelled_error, job_error
from include.local_vertex.model_versions import base_model_of, model_id_of, next_version
from include.local_vertex.processes import die_with_parent
from include.local_vertex.store import JobRecord, JobStore
from include.local_vertex.timefmt import now_rfc3339
from include.tuning_engine.recommended import adapter_rank, recommended_hyperparameters, recommended_schedule
from include.tuning_engine.spec import DatasetError, TrainingDiverged, TrainingSpec

PROGRESS_LOG_INTERVAL_S = 10.0
EXIT_INTERRUPTED = 75  # stopped by a signal: the job stays active and resumes on the next start
log = logging.getLogger("include.local_vertex.worker")


class Interrupted(BaseException):
    """Raised in the main thread by the first stop signal, wherever the worker is."""


class StopRequest:
    """
    The SIGTERM/SIGINT handler: sets the flag and raises Interrupted, once.

    Raising (rather than only setting a flag the training loop reads) is what stops the phases
    that have no loop to check a flag in, such as loading or converting a model. A plain flag,
    not a threading.Event: Event.set takes a lock, and a second signal arriving while the first
    handler holds it deadlocks the worker (seen when a stop sent SIGTERM twice).
    """

    def __init__(self) -> None:
        self._set = False

    def handle(self, *_) -> None:
        if not self._set:
            self._set = True
            raise Interrupted()

    def is_set(self) -> bool:
        return self._set


class Heartbeat:
    """Touches the job's heartbeat file (at most once a second) whenever the job makes progress."""

    def __init__(self, path: Path):
        self.path = path
        self._last = 0.0
        path.parent.mkdir(parents=True, exist_ok=True)

    def beat(self) -> None:
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            self.path.touch()


class JobReporter:
    """The engine's TrainingReporter: writes stats and metrics to the store, logs progress."""

    def __init__(self, store: JobStore, job_id: str, interrupted: StopRequest, heartbeat: Heartbeat):
        self.store = store
        self.job_id = job_id
        self.interrupted = interrupted
        self.alive = heartbeat.beat
        self._last_loss: float | None = None
        self._last_logged = (0.0, 0)  # (monotonic time, epoch) of the last progress line

    def data_stats(self, stats: dict) -> None:
        def change(record: JobRecord):
            record.resource["tuningDataStats"] = {"supervisedTuningDataStats": int64_as_strings(stats)}
            record.resource["updateTime"] = now_rfc3339()

        self.store.update(self.job_id, change)
        log.info("data: %s examples, %s tuning steps, %s truncated",
                 stats.get("tuningDatasetExampleCount"), stats.get("tuningStepCount"),
                 stats.get("totalTruncatedExampleCount"))

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.store.add_metrics(self.job_id, step, values, now_rfc3339())
        if "/train_total_loss" in values:
            self._last_loss = values["/train_total_loss"]

    def progress(self, step: int, total_steps: int, epoch: int) -> None:
        # The job's progress is in its metrics (every step, in the store) and in this log: one
        # line per epoch, at the last step, and every few seconds between (the engine's own
        # log has each step in detail).
        now = time.monotonic()
        last_time, last_epoch = self._last_logged
        if epoch != last_epoch or step == total_steps or now - last_time >= PROGRESS_LOG_INTERVAL_S:
            self._last_logged = (now, epoch)
            loss = "n/a" if self._last_loss is None else f"{self._last_loss:.4f}"
            log.info("progress: step %d/%d epoch %d loss %s", step, total_steps, epoch, loss)

    def checkpoint(self, epoch: int, step: int, adapter_dir: Path) -> None:
        def change(record: JobRecord):
            add_checkpoint(record, epoch, step, Path(adapter_dir).resolve())
            record.resource["updateTime"] = now_rfc3339()

        self.store.update(self.job_id, change)
        log.info("checkpoint after epoch %d (step %d): %s", epoch, step, adapter_dir)

    def should_stop(self) -> bool:
        self.alive()  # asked before every training step and every validation batch
        if self.interrupted.is_set():
            return True
        record = self.store.get(self.job_id)
        return record is None or record.state == "JOB_STATE_CANCELLING"


class JobRun:
    def __init__(self, store: JobStore, config: ServiceConfig, job_id: str, interrupted: StopRequest):
        self.store = store
        self.config = config
        self.job_id = job_id
        self.interrupted = interrupted
        self.job_dir = config.job_dir(job_id)
        self.heartbeat = Heartbeat(config.heartbeat_path(job_id))
        self._sources: dict[Path, str] = {}  # the job's copy of a dataset -> its URI

    def run(self) -> int:
        """The exit status: 0 when the job ended, EXIT_INTERRUPTED when a stop left it to resume."""
        try:
            return self._run()
        except Interrupted:
            log.info("stopped by a signal; the job resumes from its last checkpoint on the next start")
            return EXIT_INTERRUPTED

    def _run(self) -> int:
        record = self.store.get(self.job_id)
        if record is None or record.state != "JOB_STATE_PENDING":
            log.warning("not starting: job is %s", record.state if record else "missing")
            return 0
        try:
            spec = self._prepare(record)
            if self._cancelled_or_interrupted_before_training():
                return EXIT_INTERRUPTED if self.interrupted.is_set() else 0
            self._mark_running()
            from include.tuning_engine.trainer import train

            os.environ["TUNING_ENGINE_THREADS"] = str(self.config.worker_threads())  # before the engine's first use
            os.environ["TUNING_ENGINE_MAX_THREADS"] = str(self.config.worker_max_threads())
            result = train(spec, JobReporter(self.store, self.job_id, self.interrupted, self.heartbeat))
        except DatasetChanged as exc:
            self._fail("FAILED_PRECONDITION", str(exc))
            return 0
        except DatasetUriError as exc:
            self._fail("INVALID_ARGUMENT", str(exc))
            return 0
        except DatasetError as exc:  # named by the URI the user gave, not by the job's copy
            where = self._sources.get(exc.path.resolve(), str(exc.path))
            line = f", line {exc.line}" if exc.line is not None else ""
            self._fail("INVALID_ARGUMENT", f"unusable tuning data: {where}{line}: {exc.message}")
            return 0
        except TrainingDiverged as exc:
            self._fail("FAILED_PRECONDITION", str(exc))
            return 0
        except Exception as exc:  # noqa: BLE001 - every failure must end the job with its reason
            log.exception("training failed")
            self._fail("INTERNAL", f"training failed: {type(exc).__name__}: {exc}")
            return 0
        return self._finish(result)

    def _prepare(self, record: JobRecord):
        """Local data files, the local base model and the full hyperparameters, saved on the job."""
        tuning_spec = record.resource["supervisedTuningSpec"]
        pins = record.internal.get("datasetPins", {})
        data_dir = self.job_dir / "data"
        self.heartbeat.beat()
        log.info("fetching the tuning data")
        training = local_dataset_file(tuning_spec["trainingDatasetUri"], self.config, data_dir / "training.jsonl",
                                      field="supervisedTuningSpec.trainingDatasetUri",
                                      pin=pins.get("trainingDatasetUri"))
        validation = None
        if tuning_spec.get("validationDatasetUri"):
            validation = local_dataset_file(tuning_spec["validationDatasetUri"], self.config,
                                            data_dir / "validation.jsonl",
                                            field="supervisedTuningSpec.validationDatasetUri",
                                            pin=pins.get("validationDatasetUri"))
        self._sources = {training.resolve(): tuning_spec["trainingDatasetUri"]}
        if validation is not None:
            self._sources[validation.resolve()] = tuning_spec["validationDatasetUri"]
        self.heartbeat.beat()
        log.info("resolving the base model")
        base_model = local_base_model(base_model_of(record.resource), self.config)
        self.heartbeat.beat()
        hyper = dict(tuning_spec.get("hyperParameters", {}))
        # One rule for epochs and batch size, the pipeline's recommendation step uses it too.
        schedule = recommended_schedule(_count_examples(training), epoch_count=hyper.get("epochCount"))
        if set(hyper) != {"epochCount", "adapterSize", "learningRateMultiplier"}:
            hyper = {**recommended_hyperparameters(schedule.example_count), **hyper}
            hyper["epochCount"] = str(hyper["epochCount"])
            log.info("unset hyperparameters filled with the recommended values: %s", hyper)
        log.info("%s", schedule.reason)

        def save(job: JobRecord):
            job.resource["supervisedTuningSpec"]["hyperParameters"] = hyper
            job.internal["resolvedBaseModel"] = base_model

        self.store.update(self.job_id, save)
        return TrainingSpec(
            base_model=base_model,
            training_data=training,
            validation_data=validation,
            output_dir=self.job_dir,
            epoch_count=int(hyper["epochCount"]),
            adapter_size=adapter_rank(hyper["adapterSize"]),
            learning_rate_multiplier=float(hyper["learningRateMultiplier"]),
            checkpoint_interval_s=self.config.checkpoint_interval_s,
            batch_size=schedule.batch_size,
            export_epochs=checkpoint_epochs(int(hyper["epochCount"]),
                                            last_only=bool(tuning_spec.get("exportLastCheckpointOnly"))),
            initial_adapter=(Path(record.internal["sourceAdapterDir"]) if "sourceAdapterDir" in record.internal
                             else None),
        )

    def _cancelled_or_interrupted_before_training(self) -> bool:
        if self.interrupted.is_set():
            return True
        cancelled = self.store.transition(self.job_id, ["JOB_STATE_CANCELLING"], "JOB_STATE_CANCELLED",
                                          error=cancelled_error())
        return cancelled is not None

    def _mark_running(self) -> None:
        def change(record: JobRecord):
            if record.state != "JOB_STATE_PENDING":
                return False
            record.set_state("JOB_STATE_RUNNING")
            record.resource.setdefault("startTime", record.resource["updateTime"])

        self.store.update(self.job_id, change)
        log.info("training started")

    def _finish(self, result) -> int:
        if result.stopped:
            if self.store.transition(self.job_id, ["JOB_STATE_CANCELLING"], "JOB_STATE_CANCELLED",
                                     error=cancelled_error()):
                log.info("cancelled after %d steps", result.steps)
                return 0
            log.info("interrupted after %d steps; the job resumes from its checkpoint on the next start",
                     result.steps)
            return EXIT_INTERRUPTED

        job = self.store.get(self.job_id)
        model_id = model_id_of(job)
        version = next_version(self.store, job.project, job.location, model_id)

        def succeed(record: JobRecord):
            if record.state not in ("JOB_STATE_RUNNING", "JOB_STATE_CANCELLING"):
                return False
            prefix = f"projects/{record.project}/locations/{record.location}"
            record.set_state("JOB_STATE_SUCCEEDED", tunedModel={
                "model": f"{prefix}/models/{model_id}@{version}",
                "endpoint": f"{prefix}/endpoints/{record.id}",
                **record.resource.get("tunedModel", {}),  # the checkpoints, listed as they were saved
            })
            record.internal["adapterDir"] = str(Path(result.adapter_dir).resolve())
            record.internal["modelVersion"] = version

        self.store.update(self.job_id, succeed)
        log.info("succeeded: %d steps, %d epochs, adapter in %s", result.steps, result.epochs_completed,
                 result.adapter_dir)
        return 0

    def _fail(self, status: str, message: str) -> None:
        """FAILED with the reason; CANCELLED if a cancel came first (the user asked it to end)."""

        def end(record: JobRecord):
            if record.state == "JOB_STATE_CANCELLING":
                log.info("cancelled (it then failed: %s)", message)
                record.set_state("JOB_STATE_CANCELLED", error=cancelled_error())
            elif record.state in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING"):
                log.error("failed: %s", message)
                record.set_state("JOB_STATE_FAILED", error=job_error(status, message))
            else:
                return False

        self.store.update(self.job_id, end)


_INT64_STATS = ("tuningDatasetExampleCount", "totalTuningCharacterCount", "totalBillableTokenCount",
                 "totalBillableCharacterCount", "tuningStepCount", "totalTruncatedExampleCount")
_INT64_DISTRIBUTION = ("sum", "billableSum")


def int64_as_strings(stats: dict) -> dict:
    """supervisedTuningDataStats as Vertex writes it: protobuf JSON puts int64 values in strings,
    so code that reads the local service's stats reads Vertex's the same way."""
    converted = dict(stats)
    for key in _INT64_STATS:
        if key in converted:
            converted[key] = str(converted[key])
    if "truncatedExampleIndices" in converted:
        converted["truncatedExampleIndices"] = [str(index) for index in converted["truncatedExampleIndices"]]
    for key, value in converted.items():
        if key.endswith("Distribution") and isinstance(value, dict):
            converted[key] = {k: str(v) if k in _INT64_DISTRIBUTION else v for k, v in value.items()}
    return converted


def _count_examples(path: Path) -> int:
    with open(path, "rb") as lines:
        return sum(1 for line in lines if line.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description="run one local tuning job")
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--settings", required=True, help="JSON from config.worker_settings")
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args()
    interrupted = StopRequest()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, interrupted.handle)
    try:
        die_with_parent(args.parent_pid)
        config = config_from_worker_settings(json.loads(args.settings))
        job_dir = config.job_dir(args.job_id)
        job_dir.mkdir(parents=True, exist_ok=True)
        formatter = logging.Formatter(f"%(asctime)s %(levelname)s job {args.job_id}: %(message)s")
        handlers = [logging.FileHandler(job_dir / "worker.log"), logging.StreamHandler(sys.stderr)]
        for handler in handlers:
            handler.setFormatter(formatter)
        logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
        store = JobStore(config.db_path)
        status = JobRun(store, config, args.job_id, interrupted).run()
    except Interrupted:  # stopped before the job even began
        status = EXIT_INTERRUPTED
    sys.exit(status)


if __name__ == "__main__":
    main()
