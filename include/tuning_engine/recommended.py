"""The recommended hyperparameters: the one place that decides them for the pipeline and the service.

Google's guide gives 2-4 epochs. What a small set needs is optimisation steps, not passes. On
SmolLM2-135M (LoRA rank 8, base learning rate 1e-3; tests/benchmarks/bench_small_data.py, one
torch thread, a 2-core CPU at load 9-11), a 120-example, 10-intent set: 2 epochs at batch 8
(30 steps) -> 82% validation, 78% held-out exact match in 131 s of steps; 2 epochs at batch 4
(60 steps) -> 100% and 100% in 187 s (1.4x); 3 epochs at batch 4 (90 steps) -> 100% and 100%
in 284 s (2.2x). A 160-example, 20-topic set: 92% and 95% at batch 8, 98% and 100% at batch 4.
The shipped 520-example sample keeps 2 epochs at batch 8 (130 steps), which reach 100%.

So epochs are scaled to reach about TARGET_STEPS, and a set too small for that at batch 8 trains
at batch 4 (a batch-4 step costs about 0.7 of a batch-8 one, so twice the steps for about 1.4x
the time), within the epochs that keep training within 1.5x of 2 epochs at batch 8.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from include.tuning_engine.dataset import steps_per_epoch
from plugins.gemini_tuning.models import ADAPTER_RANKS

ADAPTER_SIZE = "ADAPTER_SIZE_EIGHT"
LEARNING_RATE_MULTIPLIER = 1.0
TARGET_STEPS = 100
MIN_EPOCHS = 2
# The engine's batch, largest first, and the most epochs that keep training within 1.5x of the
# time of 2 epochs at batch 8 (measured above): the smaller batch only where 8 cannot reach
# TARGET_STEPS.
MAX_EPOCHS = {8: 3, 4: 2}
BATCH_SIZES = tuple(MAX_EPOCHS)


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
        largest = BATCH_SIZES[0]
        why = (f"about {TARGET_STEPS} steps wanted, in at most {MAX_EPOCHS[self.batch_size]} epochs to keep the "
               f"time within 1.5x of {MIN_EPOCHS} epochs at batch {largest}")
        if self.batch_size < largest:
            why += f"; batch {self.batch_size}, not {largest}, for more steps on a small set"
        return f"{shape} ({why})"

    def to_dict(self) -> dict:
        return {**asdict(self), "total_steps": self.total_steps, "reason": self.reason}


def recommended_batch_size(example_count: int) -> int:
    """The largest batch with which its most epochs reach TARGET_STEPS, else the smallest."""
    _check_count(example_count)
    for batch_size in BATCH_SIZES:
        if MAX_EPOCHS[batch_size] * steps_per_epoch(example_count, batch_size) >= TARGET_STEPS:
            return batch_size
    return BATCH_SIZES[-1]


def recommended_schedule(example_count: int, epoch_count: int | None = None) -> Schedule:
    """Batch size and epochs for `example_count` examples; an `epoch_count` the user set wins."""
    batch_size = recommended_batch_size(example_count)
    per_epoch = steps_per_epoch(example_count, batch_size)
    if epoch_count:
        return Schedule(example_count, batch_size, per_epoch, int(epoch_count), recommended_epochs=False)
    epochs = min(MAX_EPOCHS[batch_size], max(MIN_EPOCHS, math.ceil(TARGET_STEPS / per_epoch)))
    return Schedule(example_count, batch_size, per_epoch, epochs, recommended_epochs=True)


def adapter_rank(adapter_size: str) -> int:
    """LoRA rank for a Vertex adapterSize enum value."""
    try:
        return ADAPTER_RANKS[adapter_size]
    except KeyError:
        raise ValueError(f"adapterSize must be one of {', '.join(ADAPTER_RANKS)}, not {adapter_size!r}") from None


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
