"""Recommended tuning configurations per task type, from Google's supervised tuning guide.

The guide's table: classification 500+ examples, summarization 1000+, extractive QA 500+,
chat 1000+, with 2 to 4 epochs each. It adds that more than one epoch count is worth trying and
that classification needs more data as the number of classes grows. This module turns that advice
into a decision the pipeline can branch on, and keeps the reasons so that the run can log and
archive why it chose what it chose. The epochs come from include.tuning_engine.recommended, the
one place that decides them for the pipeline and the local service alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


MINIMUM_EXAMPLES = {"classification": 500, "summarization": 1000, "extractive_qa": 500, "chat": 1000}
# The guide gives no figure for "more classes need more data"; 100 examples per class keeps the
# guide's 500 for up to five classes and grows linearly beyond.
EXAMPLES_PER_CLASS = 100
# A sweep over adapter size or learning-rate multiplier starts one paid job per setting: bounded.
MAX_JOBS = 8


@dataclass(frozen=True)
class Recommendation:
    """What to tune with, whether to tune at all, and why."""

    task_type: str
    example_count: int
    minimum_examples: int
    enough_data: bool
    proceed: bool
    epoch_counts: list[int]  # one per job
    schedules: list[dict] = field(default_factory=list)  # per job: batch, steps, why
    adapter_size: str | None = None
    learning_rate_multiplier: float | None = None
    reasons: list[str] = field(default_factory=list)
    # The create calls, one per job: {"epoch_count", "adapter_size", "learning_rate_multiplier"}
    # (None: the service's recommendation).
    jobs: list[dict] = field(default_factory=list)
    epoch_sweep: list[int] = field(default_factory=list)  # the epochs compared among checkpoints

    def to_dict(self) -> dict:
        return asdict(self)


def minimum_examples(task_type: str, class_count: int | None = None) -> int:
    if task_type not in MINIMUM_EXAMPLES:
        raise ValueError(f"unknown task type {task_type!r}: expected one of {', '.join(MINIMUM_EXAMPLES)}")
    minimum = MINIMUM_EXAMPLES[task_type]
    if task_type == "classification" and class_count:
        minimum = max(minimum, EXAMPLES_PER_CLASS * class_count)
    return minimum


def recommend(
    task_type: str,
    example_count: int,
    *,
    class_count: int | None = None,
    epoch_count: int | None = None,
    epoch_sweep: list[int] | tuple[int, ...] = (),
    adapter_size: str | None = None,
    learning_rate_multiplier: float | None = None,
    adapter_size_sweep: list[str] | tuple[str, ...] = (),
    learning_rate_multiplier_sweep: list[float] | tuple[float, ...] = (),
    allow_small_dataset: bool = False,
    warnings: list[str] | tuple[str, ...] = (),
) -> Recommendation:
    """Decide the configuration for one dataset; values the user set win over recommendations.

    An epoch sweep is one job of the largest epoch count: its checkpoints (one per epoch, as
    Vertex keeps them below 10 epochs) are the sweep's members. Sweeps over adapter size or
    learning-rate multiplier make one job per setting (their product, at most MAX_JOBS)."""
    minimum = minimum_examples(task_type, class_count)
    enough = example_count >= minimum
    reasons = []
    if task_type == "classification" and class_count:
        reasons.append(f"{class_count} classes: at least {minimum} examples recommended")
    else:
        reasons.append(f"{task_type}: at least {minimum} examples recommended")
    if enough:
        reasons.append(f"{example_count} training examples: enough")
    elif allow_small_dataset:
        reasons.append(f"only {example_count} training examples, below {minimum}; tuning anyway as allowed")
    else:
        reasons.append(
            f"only {example_count} training examples, below the {minimum} recommended for {task_type}: "
            "add examples, or set allow_small_dataset to tune anyway"
        )

    # The engine's schedule rule, imported here: the DAG file imports this module at parse time.
    from include.tuning_engine.recommended import recommended_schedule

    sweep = sorted(set(int(e) for e in epoch_sweep))
    if sweep:
        reasons.append(f"epoch sweep over {sweep}: one job of {sweep[-1]} epochs, whose checkpoint with the "
                       "lowest validation loss wins")
    schedule = recommended_schedule(example_count, epoch_count=sweep[-1] if sweep else epoch_count)
    reasons.append(schedule.reason)
    adapter_sizes = sorted(set(adapter_size_sweep)) or [adapter_size]
    multipliers = sorted(set(float(m) for m in learning_rate_multiplier_sweep)) or [learning_rate_multiplier]
    jobs = [{"epoch_count": schedule.epoch_count, "adapter_size": size, "learning_rate_multiplier": multiplier}
            for size in adapter_sizes for multiplier in multipliers]
    if len(jobs) > MAX_JOBS:
        raise ValueError(f"{len(adapter_sizes)} adapter sizes x {len(multipliers)} learning-rate multipliers are "
                         f"{len(jobs)} tuning jobs; at most {MAX_JOBS} are started for one run")
    if len(jobs) > 1:
        reasons.append(f"{len(jobs)} jobs, one per adapter size {adapter_sizes} and learning-rate multiplier "
                       f"{multipliers}; every checkpoint of every job is compared")
    reasons.extend(f"data warning: {warning}" for warning in warnings)

    return Recommendation(
        task_type=task_type,
        example_count=example_count,
        minimum_examples=minimum,
        enough_data=enough,
        proceed=enough or allow_small_dataset,
        epoch_counts=[job["epoch_count"] for job in jobs],
        schedules=[schedule.to_dict()] * len(jobs),
        adapter_size=adapter_size,
        learning_rate_multiplier=learning_rate_multiplier,
        reasons=reasons,
        jobs=jobs,
        epoch_sweep=sweep,
    )
