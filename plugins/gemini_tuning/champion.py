"""Pick the best checkpoint of a run: every checkpoint of every job, by its validation loss.

Vertex keeps a checkpoint after each epoch (below 10 epochs), so one job of N epochs holds the
candidates of an epoch sweep 1..N; a sweep over adapter size or learning rate adds one job per
setting. A checkpoint is judged by the validation loss at its step, the lowest winning (ties: the
earlier checkpoint). Without validation data there is nothing to compare checkpoints with: each
job's last checkpoint stands for it, and the lowest final training loss picks among jobs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gemini_tuning.jobs import SUCCEEDED, job_state

if TYPE_CHECKING:
    from gemini_tuning.hooks.tuning import GenAITuningHook

VALIDATION_LOSS = "/eval_total_loss"
TRAINING_LOSS = "/train_total_loss"


def loss_at(points: dict[int, float], step: int | None) -> float | None:
    """The loss at ``step``: the point there, else the last one before it (None: the final point)."""
    if not points:
        return None
    if step is None:
        return points[max(points)]
    before = [s for s in points if s <= step]
    return points[max(before)] if before else None


def pick_checkpoint(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """
    The winning checkpoint among ``candidates``, with ``judged_by``, ``loss`` and ``reason``.

    Each candidate is one checkpoint: ``{"name" (its job), "job_index", "checkpoint_id", "epoch",
    "step", "endpoint", "validation_loss", "final_training_loss", "last"}``.
    """
    if not candidates:
        raise ValueError("no checkpoint to choose from")
    validated = [c for c in candidates if c["validation_loss"] is not None]
    if validated:
        best = min(validated, key=lambda c: (c["validation_loss"], c["step"] or 0, c["job_index"]))
        return {**best, "judged_by": VALIDATION_LOSS, "loss": best["validation_loss"],
                "reason": f"lowest validation loss at its step among {len(validated)} checkpoint(s)"}
    last = [c for c in candidates if c["last"] and c["final_training_loss"] is not None]
    if not last:
        raise ValueError(f"no loss reported by any of {sorted({c['name'] for c in candidates})}")
    best = min(last, key=lambda c: (c["final_training_loss"], c["job_index"]))
    return {**best, "judged_by": TRAINING_LOSS, "loss": best["final_training_loss"],
            "reason": "no validation data, so no loss to compare checkpoints by: the last checkpoint is used"
                      + (f" (of the job with the lowest final training loss among {len(last)})" if len(last) > 1 else "")}


def choose_champion(hook: GenAITuningHook, job_names: list[str]) -> dict[str, Any]:
    """
    Read each job of the run and pick the best checkpoint among those that succeeded.

    A job that failed, was cancelled or cannot be read is listed under ``not_considered`` with
    the reason instead of failing the choice: one bad sweep member must not hide the good ones.
    The result names the job (``name``), its tuned ``model``, the checkpoint (``checkpoint_id``,
    ``epoch``, ``step``) and the ``endpoint`` that serves it, with every checkpoint considered.
    """
    from gemini_tuning.operators.archive_metrics import final_metrics, metrics_frame

    candidates, jobs, not_considered = [], [], []
    for index, name in enumerate(job_names):
        job = hook.get_tuning_job(name)
        if job_state(job) != SUCCEEDED:
            not_considered.append({"name": job.name, "state": job_state(job)})
            continue
        rows = hook.read_metric_series(job)
        finals = final_metrics(metrics_frame(rows))
        series = {metric: {row["step"]: row["value"] for row in rows if row["metric"] == metric}
                  for metric in (VALIDATION_LOSS, TRAINING_LOSS)}
        hyper = job.supervised_tuning_spec.hyper_parameters
        jobs.append({"name": job.name, "model": job.tuned_model.model, "epoch_count": hyper.epoch_count,
                     "adapter_size": str(getattr(hyper.adapter_size, "value", hyper.adapter_size) or ""),
                     "learning_rate_multiplier": hyper.learning_rate_multiplier, "final_metrics": finals})
        checkpoints = hook.list_checkpoints(job)
        for position, checkpoint in enumerate(checkpoints):
            candidates.append({
                "name": job.name, "job_index": index, **checkpoint,
                "validation_loss": loss_at(series[VALIDATION_LOSS], checkpoint["step"]),
                "final_training_loss": loss_at(series[TRAINING_LOSS], None),
                "last": position == len(checkpoints) - 1,
            })
    if not jobs:
        raise ValueError(f"no tuning job of the run succeeded: {not_considered}")
    best = pick_checkpoint(candidates)
    job = next(j for j in jobs if j["name"] == best["name"])
    return {**job, **{key: best[key] for key in ("checkpoint_id", "epoch", "step", "endpoint", "judged_by",
                                                 "loss", "reason")},
            "checkpoints": candidates, "candidates": jobs, "not_considered": not_considered}
