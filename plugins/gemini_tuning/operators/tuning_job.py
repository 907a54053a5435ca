"""Operators for the tuning job calls of Google's supervised tuning guide: create, get, list, cancel."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from gemini_tuning.jobs import (
    CANCELLING,
    ENDED,
    ENDED_UNSUCCESSFULLY,
    job_state,
    job_summary,
    job_to_dict,
    label_value,
)
from gemini_tuning.links.tuning_job import TuningJobLink
from gemini_tuning.models import ADAPTER_RANKS, check_tuning_request
from gemini_tuning.operators.base import GenAITuningBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

_ADAPTER_SIZE_OF_RANK = {rank: name for name, rank in ADAPTER_RANKS.items()}


REQUEST_HASH_LABEL = "airflow_request_hash"


def dag_run_labels(dag_id: str, run_id: str) -> dict[str, str]:
    """
    Labels naming the DAG run that creates a job: every job of a run carries them.

    The run id is hashed (with the DAG id) because label values are short and restricted to
    ``[a-z0-9_-]``; the DAG id is kept readable for people browsing jobs.
    """
    run_hash = hashlib.sha256(f"{dag_id}\n{run_id}".encode()).hexdigest()[:20]
    return {"airflow_dag_id": label_value(dag_id), "airflow_run_hash": run_hash}


def run_labels(context: Context) -> dict[str, str]:
    """Labels naming the task instance that creates a job, the same on every try."""
    ti = context["ti"]
    task = ti.task_id if ti.map_index < 0 else f"{ti.task_id}-{ti.map_index}"
    return {**dag_run_labels(ti.dag_id, ti.run_id), "airflow_task_id": label_value(task)}


def request_hash(request: dict[str, Any]) -> str:
    """
    A short hash of what a create call asks for, as a label value.

    A retry adopts a job only when this matches, so a run cleared after its dataset or its
    hyperparameters changed starts a new job instead of reusing one trained on the old request.
    """
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _text(value: Any) -> str | None:
    """A templated text field as a string: native rendering turns a display name like "2024" into an int."""
    if value is None or value == "":
        return None
    return str(value)


def _optional(value: Any, convert: type, field: str) -> Any:
    """Convert a templated hyperparameter (often a string after rendering); None and "" mean unset."""
    if value is None or value == "":
        return None
    try:
        return convert(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be {convert.__name__}, got {value!r}") from None


def adapter_size_name(value: Any) -> str | None:
    """Accept ``4``, ``"4"`` or ``"ADAPTER_SIZE_FOUR"``; return Vertex's enum name."""
    if value is None or value == "":
        return None
    if str(value).upper() in ADAPTER_RANKS:
        return str(value).upper()
    size = _optional(value, int, "adapter_size")
    if size not in _ADAPTER_SIZE_OF_RANK:
        raise ValueError(
            f"adapter_size must be one of {sorted(_ADAPTER_SIZE_OF_RANK)} or their ADAPTER_SIZE_* names, got {value!r}"
        )
    return _ADAPTER_SIZE_OF_RANK[size]


class CreateTuningJobOperator(GenAITuningBaseOperator):
    """
    Start a supervised tuning job, or adopt the one this task instance already started.

    The job carries labels naming the DAG, the run and the task (not the try) and a hash of the
    request, so a retried task lists jobs with those labels and reuses one that is queued,
    running or succeeded instead of paying for a second job; a changed request (new dataset,
    other hyperparameters) does not match and gets a new job. Pushes ``tuning_job_name`` and
    the link to the job; returns the job.

    With ``wait_for_completion`` the task then stays deferred (in the triggerer, no worker slot)
    until the job ends, so it holds its pool slot for the job's whole life: in a pool that counts
    deferred tasks, the pool's slots bound the jobs that run at once, across runs and sweeps. It
    returns the ended job whatever its outcome (freeing the slot is its part; judging the job is
    TuningJobSensor's, which fails with the job's message). Killing the deferred task cancels the job.

    :param base_model: Model to tune, e.g. ``gemini-2.5-flash``, or a tuned model
        ``projects/P/locations/L/models/ID`` to continue from (continuous tuning). (templated)
    :param checkpoint_id: Optional checkpoint of that tuned model to continue from. (templated)
    :param training_dataset_uri: Cloud Storage URI of the training JSONL. (templated)
    :param validation_dataset_uri: Optional Cloud Storage URI of the validation JSONL. (templated)
    :param tuned_model_display_name: Optional display name of the tuned model. (templated)
    :param description: Optional description of the job. (templated)
    :param epoch_count: Optional number of epochs; unset uses the service's recommendation. (templated)
    :param adapter_size: Optional LoRA adapter size, 1-32 or ``ADAPTER_SIZE_*``; unset is recommended. (templated)
    :param learning_rate_multiplier: Optional multiplier of the recommended learning rate. (templated)
    :param labels: Optional extra labels for the job. (templated)
    :param reuse_existing_job: Adopt a live or succeeded job of this task instance instead of creating one.
    :param wait_for_completion: Stay deferred until the job ends, holding the task's pool slot.
    :param poll_interval: Seconds between the first polls of the deferred wait.
    :param max_poll_interval: Longest wait between polls of the deferred wait.
    :param job_timeout: Seconds the deferred wait lasts at most; the job is cancelled then. None: no limit.
    """

    template_fields: Sequence[str] = (
        *GenAITuningBaseOperator.connection_fields,
        "base_model",
        "checkpoint_id",
        "training_dataset_uri",
        "validation_dataset_uri",
        "tuned_model_display_name",
        "description",
        "epoch_count",
        "adapter_size",
        "learning_rate_multiplier",
        "labels",
    )
    operator_extra_links = (TuningJobLink(),)

    def __init__(
        self,
        *,
        base_model: str,
        checkpoint_id: str | None = None,
        training_dataset_uri: str,
        validation_dataset_uri: str | None = None,
        tuned_model_display_name: str | None = None,
        description: str | None = None,
        epoch_count: int | str | None = None,
        adapter_size: int | str | None = None,
        learning_rate_multiplier: float | str | None = None,
        labels: dict[str, str] | None = None,
        reuse_existing_job: bool = True,
        wait_for_completion: bool = False,
        poll_interval: float = 10.0,
        max_poll_interval: float = 300.0,
        job_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.base_model = base_model
        self.checkpoint_id = checkpoint_id
        self.training_dataset_uri = training_dataset_uri
        self.validation_dataset_uri = validation_dataset_uri
        self.tuned_model_display_name = tuned_model_display_name
        self.description = description
        self.epoch_count = epoch_count
        self.adapter_size = adapter_size
        self.learning_rate_multiplier = learning_rate_multiplier
        self.labels = labels
        self.reuse_existing_job = reuse_existing_job
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.job_timeout = job_timeout

    def execute(self, context: Context) -> dict[str, Any]:
        request = self._request()
        check_tuning_request(request["base_model"], request["adapter_size"], self.hook.location)
        own_labels = {**run_labels(context), REQUEST_HASH_LABEL: request_hash(request)}
        job = self._job_already_started(own_labels) if self.reuse_existing_job else None
        if job is None:
            extra_labels = {str(key): str(value) for key, value in (self.labels or {}).items()}
            job = self.hook.create_tuning_job(**request, labels={**extra_labels, **own_labels})
            self.log.info("Created tuning job %s (%s)", job.name, job_state(job))
        url = self.hook.job_url(job.name)
        self.log.info("Tuning job: %s", url)
        context["ti"].xcom_push(key="tuning_job_name", value=job.name)
        TuningJobLink.persist(context, url)
        if self.wait_for_completion and job_state(job) not in ENDED:
            self.log.info("Holding pool %s's slot until tuning job %s ends", self.pool, job.name)
            self.defer_until_job_ends(
                job.name,
                timeout=self.job_timeout,
                poll_interval=self.poll_interval,
                max_poll_interval=self.max_poll_interval,
            )
        return job_to_dict(job)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume once the job ended (its slot is free now): return the job as it ended."""
        self.log.info(event["message"])
        if event["status"] == "success":
            return event["job"]
        if event["status"] == "timeout":  # the job was cancelled: a retry would start over
            raise AirflowFailException(event["message"])
        if event.get("job_state") in ENDED_UNSUCCESSFULLY:
            return job_to_dict(self.hook.get_tuning_job(event["job_name"]))
        # The job could not be read: a retry adopts it (same labels and hash) and waits again.
        raise AirflowException(event["message"])

    def _request(self) -> dict[str, Any]:
        """The create call's arguments, typed: strings stay strings, numbers are checked."""
        base_model = _text(self.base_model)
        training_dataset_uri = _text(self.training_dataset_uri)
        if not base_model or not training_dataset_uri:
            raise ValueError("base_model and training_dataset_uri are required")
        return {
            "base_model": base_model,
            "checkpoint_id": _text(self.checkpoint_id),
            "training_dataset_uri": training_dataset_uri,
            "validation_dataset_uri": _text(self.validation_dataset_uri),
            "tuned_model_display_name": _text(self.tuned_model_display_name),
            "description": _text(self.description),
            "epoch_count": _optional(self.epoch_count, int, "epoch_count"),
            "adapter_size": adapter_size_name(self.adapter_size),
            "learning_rate_multiplier": _optional(self.learning_rate_multiplier, float, "learning_rate_multiplier"),
        }

    def _job_already_started(self, own_labels: dict[str, str]) -> Any:
        """A live or succeeded job of this task instance made from the same request (same hash label)."""
        for job in self.hook.find_tuning_jobs_by_labels(own_labels):
            state = job_state(job)
            if state not in ENDED_UNSUCCESSFULLY and state != CANCELLING:
                self.log.info("Reusing tuning job %s (%s) started by an earlier try", job.name, state)
                return job
            self.log.info("Not reusing tuning job %s: it ended %s", job.name, state)
        return None


class _OneJobOperator(GenAITuningBaseOperator):
    """
    Base of the operators that act on one existing job, named by ``job_name``.

    :param job_name: Job id or full resource name ``projects/P/locations/L/tuningJobs/ID``. (templated)
    """

    template_fields: Sequence[str] = (*GenAITuningBaseOperator.connection_fields, "job_name")
    operator_extra_links = (TuningJobLink(),)

    def __init__(self, *, job_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name


class GetTuningJobOperator(_OneJobOperator):
    """Read one tuning job; returns its resource (camelCase JSON)."""

    def execute(self, context: Context) -> dict[str, Any]:
        job = self.hook.get_tuning_job(self.job_name)
        self.log.info("Tuning job %s: %s", job.name, job_state(job))
        TuningJobLink.persist(context, self.hook.job_url(job.name))
        return job_to_dict(job)


class ListTuningJobsOperator(GenAITuningBaseOperator):
    """
    List the tuning jobs of the project and location, page by page and at most ``max_jobs``.

    Returns one short summary per job (name, state, display name, base model, times, labels), so
    the XCom stays small however many jobs the project holds; get a job for its full resource.

    :param filter: Optional standard list filter, e.g. ``labels.airflow_dag_id="gemini_tuning"``. (templated)
    :param page_size: Optional page size of each list call.
    :param max_jobs: Most jobs read and returned.
    """

    template_fields: Sequence[str] = (*GenAITuningBaseOperator.connection_fields, "filter")

    def __init__(
        self, *, filter: str | None = None, page_size: int | None = None, max_jobs: int = 100, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.filter = filter
        self.page_size = page_size
        self.max_jobs = max_jobs

    def execute(self, context: Context) -> list[dict[str, Any]]:
        jobs = self.hook.list_tuning_jobs(filter=self.filter or None, page_size=self.page_size, max_jobs=self.max_jobs)
        for job in jobs:
            self.log.info("%s  %s  %s", job.name, job_state(job), job.tuned_model_display_name or "")
        more = " (the first ones: raise max_jobs or narrow the filter for more)" if len(jobs) == self.max_jobs else ""
        self.log.info("%d tuning job(s)%s", len(jobs), more)
        return [job_summary(job) for job in jobs]


class CancelTuningJobOperator(_OneJobOperator):
    """Cancel a tuning job; a job that already ended is left as it is. Returns the job after the call."""

    def execute(self, context: Context) -> dict[str, Any]:
        job = self.hook.get_tuning_job(self.job_name)
        TuningJobLink.persist(context, self.hook.job_url(job.name))
        if job_state(job) in ENDED:
            self.log.info("Tuning job %s already ended %s: nothing to cancel", job.name, job_state(job))
            return job_to_dict(job)
        self.hook.cancel_tuning_job(job.name)
        job = self.hook.get_tuning_job(job.name)
        self.log.info("Cancel requested for tuning job %s, now %s", job.name, job_state(job))
        return job_to_dict(job)
