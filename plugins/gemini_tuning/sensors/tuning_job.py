"""Sensor that waits for a tuning job to end, deferred to the triggerer by default."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout
from gemini_tuning.jobs import ENDED, ENDED_UNSUCCESSFULLY, SUCCEEDED, failure_message, job_state, job_to_dict
from gemini_tuning.links.console import ConsoleJobLink
from gemini_tuning.links.tuning_job import TuningJobLink
from gemini_tuning.operators.base import GenAITuningBaseOperator

if TYPE_CHECKING:
    from google.genai.types import TuningJob

    from airflow.sdk import Context


class TuningJobSensor(BaseSensorOperator, GenAITuningBaseOperator):
    """
    Wait until a tuning job succeeds; fail with the job's own message if it fails, is cancelled or expires.

    Deferrable by default: the wait runs in the triggerer and holds no worker slot. The sensor's
    ``timeout`` cancels the job when it passes (``cancel_on_timeout``); killing the task (mark
    failed, clear) cancels it too (``cancel_on_kill``), in deferred and in poke mode. Returns the
    job resource (camelCase JSON) once it succeeded.

    :param job_name: Job id or full resource name of the job to watch. (templated)
    :param deferrable: Wait in the triggerer (default) instead of a worker slot.
    :param poll_interval: Seconds between the first polls (defaults to ``poke_interval``).
    :param max_poll_interval: Longest wait between polls of the deferred wait.
    :param backoff_factor: Growth of the wait after each poll of the deferred wait.
    :param max_transient_errors: Consecutive retriable errors (5xx, 429, time-outs) tolerated while deferred.
    :param cancel_on_timeout: Cancel the job when the sensor's timeout passes.
    :param cancel_on_kill: Cancel the job when the task is killed while waiting.
    """

    template_fields: Sequence[str] = (*GenAITuningBaseOperator.connection_fields, "job_name")
    operator_extra_links = (TuningJobLink(), ConsoleJobLink())

    def __init__(
        self,
        *,
        job_name: str,
        deferrable: bool = True,
        poll_interval: float | None = None,
        max_poll_interval: float = 300.0,
        backoff_factor: float = 1.5,
        max_transient_errors: int = 5,
        cancel_on_timeout: bool = True,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.backoff_factor = backoff_factor
        self.max_transient_errors = max_transient_errors
        self.cancel_on_timeout = cancel_on_timeout
        self.cancel_on_kill = cancel_on_kill
        self._watched_job: str | None = None

    def execute(self, context: Context) -> Any:
        self._watched_job = self.hook.qualify_job_name(self.job_name)
        TuningJobLink.persist(context, self.hook.job_url(self._watched_job))
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout:
                self._cancel_after_timeout()
                raise
        job = self.hook.get_tuning_job(self._watched_job)
        if job_state(job) in ENDED:
            return self._result(job)
        self.log.info("Tuning job %s is %s: deferring the wait", job.name, job_state(job))
        self.defer_until_job_ends(
            self._watched_job,
            timeout=self.timeout,
            poll_interval=self.poll_interval or self.poke_interval,
            max_poll_interval=self.max_poll_interval,
            backoff_factor=self.backoff_factor,
            max_transient_errors=self.max_transient_errors,
            cancel_on_timeout=self.cancel_on_timeout,
            cancel_on_kill=self.cancel_on_kill,
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        job = self.hook.get_tuning_job(self._watched_job or self.job_name)
        self.log.info("Tuning job %s: %s", job.name, job_state(job))
        if job_state(job) in ENDED:
            return PokeReturnValue(is_done=True, xcom_value=self._result(job))
        return False

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger's single event: return the job, or fail with its message."""
        self.log.info(event["message"])
        if event["status"] == "success":
            return event["job"]
        if event["status"] == "timeout":
            raise AirflowSensorTimeout(event["message"])
        if event.get("job_state") in ENDED_UNSUCCESSFULLY:
            raise AirflowFailException(event["message"])
        raise AirflowException(event["message"])

    def on_kill(self) -> None:
        """Cancel the watched job when the task is killed while polling in a worker."""
        if not (self.cancel_on_kill and self._watched_job):
            return
        if job_state(self.hook.get_tuning_job(self._watched_job)) in ENDED:
            return
        self.log.info("Task killed: cancelling tuning job %s", self._watched_job)
        self.hook.cancel_tuning_job(self._watched_job)

    def _result(self, job: TuningJob) -> dict[str, Any]:
        # A job that ended badly will not recover by retrying the wait: fail without retries.
        if job_state(job) != SUCCEEDED:
            raise AirflowFailException(failure_message(job))
        return job_to_dict(job)

    def _cancel_after_timeout(self) -> None:
        if not (self.cancel_on_timeout and self._watched_job):
            return
        if job_state(self.hook.get_tuning_job(self._watched_job)) not in ENDED:
            self.log.info("Sensor timed out: cancelling tuning job %s", self._watched_job)
            self.hook.cancel_tuning_job(self._watched_job)
