"""Pick the best of several tuning jobs of one run (an epoch sweep) by their final metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gemini_tuning.jobs import SUCCEEDED, job_state

if TYPE_CHECKING:
    from gemini_tuning.hooks.tuning import GenAITuningHook


def final_loss(final_metrics: dict[str, dict[str, Any]]) -> tuple[str, float] | None:
    """The loss a job is judged by: the last validation loss, else the last training loss."""
    for metric in ("/eval_total_loss", "/train_total_loss"):
        if metric in final_metrics:
            return metric, float(final_metrics[metric]["value"])
    return None


def pick_champion(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """
    The candidate with the lowest final loss; each is ``{"name", "epoch_count", "final_metrics"}``.

    Validation loss is compared only with validation loss: when some jobs report it and others
    do not, the ones without cannot win, since training loss always flatters a longer run.
    """
    if not candidates:
        raise ValueError("no tuning job to choose from")
    judged = [(final_loss(c["final_metrics"]), c) for c in candidates]
    with_eval = [(loss, c) for loss, c in judged if loss and loss[0] == "/eval_total_loss"]
    pool = with_eval or [(loss, c) for loss, c in judged if loss]
    if not pool:
        raise ValueError(f"no loss reported by any of {[c['name'] for c in candidates]}")
    (metric, value), champion = min(pool, key=lambda item: item[0][1])
    return {**champion, "judged_by": metric, "loss": value}


def choose_champion(hook: GenAITuningHook, job_names: list[str]) -> dict[str, Any]:
    """
    Read each job of a sweep and pick the champion among those that succeeded.

    A member that failed, was cancelled or cannot be read is listed under ``not_considered``
    with the reason instead of failing the choice: one bad epoch count must not hide the good ones.
    """
    from gemini_tuning.operators.archive_metrics import final_metrics, metrics_frame

    candidates, not_considered = [], []
    for name in job_names:
        job = hook.get_tuning_job(name)
        if job_state(job) != SUCCEEDED:
            not_considered.append({"name": job.name, "state": job_state(job)})
            continue
        epochs = job.supervised_tuning_spec.hyper_parameters.epoch_count
        finals = final_metrics(metrics_frame(hook.read_metric_series(job)))
        candidates.append({"name": job.name, "epoch_count": epochs, "final_metrics": finals})
    if not candidates:
        raise ValueError(f"no tuning job of the sweep succeeded: {not_considered}")
    return {**pick_champion(candidates), "candidates": candidates, "not_considered": not_considered}
