"""
Trigger that waits for a supervised tuning job in the triggerer, so no worker slot is held.

It lives in plugins/ because the triggerer imports plugins/ but not the dags folder, and it
imports light: google-genai is only loaded by the hook once the trigger runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from gemini_tuning.hooks.tuning import GenAITuningAsyncHook, is_transient_error
from gemini_tuning.jobs import DEFAULT_CONN_ID, ENDED_UNSUCCESSFULLY, SUCCEEDED, failure_message, job_state, job_to_dict


class TuningJobTrigger(BaseTrigger):
    """
    Poll a tuning job with back-off until it ends, then yield exactly one event.

    Events: ``{"status": "success", "job_name", "job", "message"}`` when the job succeeded;
    ``{"status": "error", "job_name", "job_state", "message"}`` with the job's own error message
    when it failed, was cancelled or expired (or could not be read); ``{"status": "timeout", ...}``
    when ``deadline`` passed first (the job is cancelled then if ``cancel_on_timeout``).

    :param job_name: Full resource name of the tuning job.
    :param conn_id: Connection to the tuning service.
    :param impersonation_chain: Optional service account to impersonate (Vertex only).
    :param project_id: Overrides the connection's project.
    :param location: Overrides the connection's location.
    :param poll_interval: Seconds before the first re-poll.
    :param max_poll_interval: Longest wait between polls, reached by multiplying by ``backoff_factor``.
    :param backoff_factor: Growth of the wait after each poll (and each transient error).
    :param max_transient_errors: Consecutive retriable errors (5xx, 429, time-outs) tolerated before failing.
    :param deadline: Unix time after which the wait gives up; None waits as long as the job runs.
    :param cancel_on_timeout: Cancel the job when the deadline passes.
    :param cancel_on_kill: Cancel the job when a user kills the deferred task (mark failed, clear, ...).
    """

    def __init__(
        self,
        *,
        job_name: str,
        conn_id: str = DEFAULT_CONN_ID,
        impersonation_chain: str | Sequence[str] | None = None,
        project_id: str | None = None,
        location: str | None = None,
        poll_interval: float = 10.0,
        max_poll_interval: float = 300.0,
        backoff_factor: float = 1.5,
        max_transient_errors: int = 5,
        deadline: float | None = None,
        cancel_on_timeout: bool = True,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.job_name = job_name
        self.conn_id = conn_id
        self.impersonation_chain = impersonation_chain
        self.project_id = project_id
        self.location = location
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.backoff_factor = backoff_factor
        self.max_transient_errors = max_transient_errors
        self.deadline = deadline
        self.cancel_on_timeout = cancel_on_timeout
        self.cancel_on_kill = cancel_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_name": self.job_name,
                "conn_id": self.conn_id,
                "impersonation_chain": self.impersonation_chain,
                "project_id": self.project_id,
                "location": self.location,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "backoff_factor": self.backoff_factor,
                "max_transient_errors": self.max_transient_errors,
                "deadline": self.deadline,
                "cancel_on_timeout": self.cancel_on_timeout,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _get_async_hook(self) -> GenAITuningAsyncHook:
        return GenAITuningAsyncHook(
            gcp_conn_id=self.conn_id,
            impersonation_chain=self.impersonation_chain,
            project_id=self.project_id,
            location=self.location,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._get_async_hook()
        delay = self.poll_interval
        transient_errors = 0
        latest = None  # the metrics' last points, as of the last successful poll
        try:
            while True:
                try:
                    job = await hook.get_tuning_job(self.job_name)
                except Exception as error:
                    latest = None
                    if not is_transient_error(error) or transient_errors >= self.max_transient_errors:
                        self.log.exception("Could not read tuning job %s", self.job_name)
                        yield self._event("error", f"Could not read tuning job {self.job_name}: {error}")
                        return
                    transient_errors += 1
                    self.log.warning(
                        "Transient error %d/%d reading tuning job %s, retrying in %.0f s: %s",
                        transient_errors,
                        self.max_transient_errors,
                        self.job_name,
                        delay,
                        error,
                    )
                else:
                    transient_errors = 0
                    state = job_state(job)
                    latest = await self._log_progress(hook, job, state)
                    if state == SUCCEEDED:
                        yield self._event("success", f"Tuning job {self.job_name} succeeded.", job=job_to_dict(job))
                        return
                    if state in ENDED_UNSUCCESSFULLY:
                        yield self._event("error", failure_message(job), job_state=state)
                        return
                if self.deadline is not None and time.time() >= self.deadline:
                    yield await self._give_up(hook)
                    return
                # Wake when the job should be done, not up to a whole backed-off interval later.
                left = seconds_left(job, latest) if latest else None
                wait = delay if left is None else min(delay, max(self.poll_interval, left))
                await asyncio.sleep(self._until_deadline(wait))
                delay = min(delay * self.backoff_factor, self.max_poll_interval)
        except asyncio.CancelledError:
            # The triggerer cancels us both when it shuts down (the job must keep running: another
            # triggerer resumes the wait) and when a user stops the task; only the latter is
            # followed by on_kill(), which cancels the job.
            self.log.info("Stopped waiting for tuning job %s", self.job_name)
            raise

    async def on_kill(self) -> None:
        """
        Cancel the job: the triggerer calls this only when a user stops the deferred task.

        Airflow 3.3's triggerer calls ``on_kill`` after a mark failed / mark success / clear of
        the task, and never when it shuts down, hands the trigger to another triggerer or times
        it out, so there is no task state to double-check (mapped or not). A failure here is
        logged by the triggerer; the job is then left to the run's failure handling.
        """
        if not self.cancel_on_kill:
            return
        self.log.info("Task was stopped: cancelling tuning job %s", self.job_name)
        await self._get_async_hook().cancel_tuning_job(self.job_name)

    async def _give_up(self, hook: GenAITuningAsyncHook) -> TriggerEvent:
        message = f"Gave up waiting for tuning job {self.job_name}: the sensor's timeout passed"
        if self.cancel_on_timeout:
            try:
                await hook.cancel_tuning_job(self.job_name)
                message += "; the job was cancelled."
            except Exception as error:  # still exactly one event: the timeout, saying what went wrong
                self.log.exception("Could not cancel tuning job %s", self.job_name)
                message += f"; cancelling the job failed ({error}): cancel it by hand."
        else:
            message += "; the job keeps running."
        return self._event("timeout", message)

    def _until_deadline(self, delay: float) -> float:
        if self.deadline is None:
            return delay
        return max(0.0, min(delay, self.deadline - time.time()))

    async def _log_progress(self, hook: GenAITuningAsyncHook, job: Any, state: str) -> dict | None:
        """Logs the job's state and last step; returns its metrics' last points (or None)."""
        try:
            latest = await hook.latest_metrics(job)
        except Exception as error:  # progress is nice to have: never fail the wait for it
            self.log.debug("Could not read metrics of %s: %s", self.job_name, error)
            latest = None
        progress = ""
        if latest and (train := latest.get("/train_total_loss")):
            progress = f", step {train['step']}, train loss {train['value']:.4f}"
            if evaluation := latest.get("/eval_total_loss"):
                progress += f", eval loss {evaluation['value']:.4f}"
        self.log.info("Tuning job %s: %s%s", self.job_name, state, progress)
        return latest

    def _event(self, status: str, message: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "job_name": self.job_name, "message": message, **payload})


def seconds_left(job: Any, latest: dict | None) -> float | None:
    """The job's remaining training time at its pace so far (from its start, its last step's wall
    time and its step count), or None where one of them is unknown."""
    from datetime import datetime

    train = (latest or {}).get("/train_total_loss")
    stats = getattr(job, "tuning_data_stats", None)
    total = getattr(getattr(stats, "supervised_tuning_data_stats", None), "tuning_step_count", None)
    started = getattr(job, "start_time", None)
    if not (train and train.get("step") and train.get("wall_time") and total and started):
        return None
    stepped = datetime.fromisoformat(train["wall_time"]).timestamp()
    per_step = (stepped - started.timestamp()) / train["step"]
    return max(0.0, (int(total) - train["step"]) * per_step - (time.time() - stepped))
