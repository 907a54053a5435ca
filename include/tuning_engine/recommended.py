"""The recommended hyperparameters: the one place that decides them for the pipeline and the service.

Google's guide gives 2-4 epochs. What a small set needs is optimisation steps, not passes: on
SmolLM2-135M (LoRA rank 8, base learning rate 1e-3), 2 epochs of the shipped 520-example sample
at batch 8 (130 steps) reach 100/100 held-out exact match, while 2 epochs of a 120-example,
10-class set (30 steps) reached 68%. So the epochs are scaled to reach about TARGET_STEPS, a
set too small for that at batch 8 trains at batch 4 (twice the steps for the same compute), and
epochs stay within MAX_EPOCHS: training time within 1.5x of 2 epochs of the same data. Figures:
tests/benchmarks/bench_small_data.py and tests/benchmarks/bench_training.py --quality.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from include.tuning_engine.dataset import steps_per_epoch

ADAPTER_SIZES = {
    "ADAPTER_SIZE_ONE": 1,
    "ADAPTER_SIZE_TWO": 2,
    "ADAPTER_SIZE_FOUR": 4,
    "ADAPTER_SIZE_EIGHT": 8,
    "ADAPTER_SIZE_SIXTEEN": 16,
    "ADAPTER_SIZE_THIRTY_TWO": 32,
}
ADAPTER_SIZE = "ADAPTER_SIZE_EIGHT"
LEARNING_RATE_MULTIPLIER = 1.0
BATCH_SIZES = (8, 4)  # the engine's batch; the smaller one only where 8 cannot reach TARGET_STEPS
TARGET_STEPS = 100
MIN_EPOCHS, MAX_EPOCHS = 2, 3


@dataclass(frozen=True)
class Schedule:
    """How a training set is passed through the model, and why."""

    example_count: int
    batch_size: int
    steps_per_epoch: int
    epoch_count: int
    recommended_epochs: bool  # False: the epoch count was the user's

    @property
    def total_steps(self) -> int:
        return self.epoch_count * self.steps_per_epoch

    @property
    def reason(self) -> str:
        choice = "recommended" if self.recommended_epochs else "as requested"
        shape = (f"{self.epoch_count} epochs {choice}: {self.example_count} examples at batch {self.batch_size} "
                 f"are {self.steps_per_epoch} steps per epoch, {self.total_steps} optimisation steps in all")
        if not self.recommended_epochs:
            return shape
        why = f"about {TARGET_STEPS} steps wanted, within {MIN_EPOCHS} to {MAX_EPOCHS} epochs"
        if self.batch_size < BATCH_SIZES[0]:
            why += f"; batch {self.batch_size}, not {BATCH_SIZES[0]}, for more steps on a small set"
        return f"{shape} ({why})"

    def to_dict(self) -> dict:
        return {**asdict(self), "total_steps": self.total_steps, "reason": self.reason}


def recommended_batch_size(example_count: int) -> int:
    """The largest batch with which MAX_EPOCHS epochs reach TARGET_STEPS, else the smallest."""
    _check_count(example_count)
    for batch_size in BATCH_SIZES:
        if MAX_EPOCHS * steps_per_epoch(example_count, batch_size) >= TARGET_STEPS:
            return batch_size
    return BATCH_SIZES[-1]


def recommended_schedule(example_count: int, epoch_count: int | None = None) -> Schedule:
    """Batch size and epochs for `example_count` examples; an `epoch_count` the user set wins."""
    batch_size = recommended_batch_size(example_count)
    per_epoch = steps_per_epoch(example_count, batch_size)
    if epoch_count:
        return Schedule(example_count, batch_size, per_epoch, int(epoch_count), recommended_epochs=False)
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / per_epoch)))
    return Schedule(example_count, batch_size, per_epoch, epochs, recommended_epochs=True)


def adapter_rank(adapter_size: str) -> int:
    """LoRA rank for a Vertex adapterSize enum value."""
    try:
        return ADAPTER_SIZES[adapter_size]
    except KeyError:
        raise ValueError(f"adapterSize must be one of {', '.join(ADAPTER_SIZES)}, not {adapter_size!r}") from None


def recommended_hyperparameters(example_count: int) -> dict:
    """Vertex-shaped hyperParameters for a training set of `example_count` examples."""
    return {
        "epochCount": recommended_schedule(example_count).epoch_count,
        "adapterSize": ADAPTER_SIZE,
        "learningRateMultiplier": LEARNING_RATE_MULTIPLIER,
    }


def _check_count(example_count: int) -> None:
    if example_count < 1:
        raise ValueError(f"a tuning set needs at least one example, not {example_count}")
