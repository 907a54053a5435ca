"""Recommended tuning configurations per task type, from Google's supervised tuning guide.

The guide's table: classification 500+ examples, summarization 1000+, extractive QA 500+,
chat 1000+, with 2 to 4 epochs each. It adds that more than one epoch count is worth trying,
that small datasets want fewer epochs (overfitting), and that classification needs more data as
the number of classes grows. This module turns that advice into a decision the pipeline can
branch on, and keeps the reasons so that the run can log and archive why it chose what it chose.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

MINIMUM_EXAMPLES = {"classification": 500, "summarization": 1000, "extractive_qa": 500, "chat": 1000}
EPOCH_RANGE = (2, 4)
# The guide gives no figure for "more classes need more data"; 100 examples per class keeps the
# guide's 500 for up to five classes and grows linearly beyond.
EXAMPLES_PER_CLASS = 100


@dataclass(frozen=True)
class Recommendation:
    """What to tune with, whether to tune at all, and why."""

    task_type: str
    example_count: int
    minimum_examples: int
    enough_data: bool
    proceed: bool
    epoch_counts: list[int]
    adapter_size: str | None = None
    learning_rate_multiplier: float | None = None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def minimum_examples(task_type: str, class_count: int | None = None) -> int:
    if task_type not in MINIMUM_EXAMPLES:
        raise ValueError(f"unknown task type {task_type!r}: expected one of {', '.join(MINIMUM_EXAMPLES)}")
    minimum = MINIMUM_EXAMPLES[task_type]
    if task_type == "classification" and class_count:
        minimum = max(minimum, EXAMPLES_PER_CLASS * class_count)
    return minimum


def recommended_epochs(example_count: int, minimum: int) -> int:
    """Fewer epochs on small sets: 2 below twice the minimum, 3 below four times, else 4."""
    low, high = EPOCH_RANGE
    if example_count < 2 * minimum:
        return low
    if example_count < 4 * minimum:
        return low + 1
    return high


def recommend(
    task_type: str,
    example_count: int,
    *,
    class_count: int | None = None,
    epoch_count: int | None = None,
    epoch_sweep: list[int] | tuple[int, ...] = (),
    adapter_size: str | None = None,
    learning_rate_multiplier: float | None = None,
    allow_small_dataset: bool = False,
    warnings: list[str] | tuple[str, ...] = (),
) -> Recommendation:
    """Decide the configuration for one dataset; values the user set win over recommendations."""
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

    if epoch_sweep:
        epochs = sorted(set(int(e) for e in epoch_sweep))
        reasons.append(f"epoch sweep over {epochs}: the job with the lowest final validation loss wins")
    elif epoch_count:
        epochs = [int(epoch_count)]
        reasons.append(f"{epoch_count} epochs as requested")
    else:
        epochs = [recommended_epochs(example_count, minimum)]
        reasons.append(f"{epochs[0]} epochs recommended for {example_count} examples (fewer on small sets)")
    reasons.extend(f"data warning: {warning}" for warning in warnings)

    return Recommendation(
        task_type=task_type,
        example_count=example_count,
        minimum_examples=minimum,
        enough_data=enough,
        proceed=enough or allow_small_dataset,
        epoch_counts=epochs,
        adapter_size=adapter_size,
        learning_rate_multiplier=learning_rate_multiplier,
        reasons=reasons,
    )
