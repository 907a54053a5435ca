"""What a tuning run needs and what it reports: the engine's interface with the local service.

Light on purpose (no torch): the service imports it in its API process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Gemini 2.x accepts up to 131,072 tokens per example; a 135M model on a CPU cannot use that
# much, and longer examples lose their oldest context (never their answer) and are counted,
# never dropped.
DEFAULT_MAX_EXAMPLE_TOKENS = 2048
# A run also saves a checkpoint this often within an epoch, so a restart of a long epoch loses
# minutes, not the epoch.
DEFAULT_CHECKPOINT_INTERVAL_S = 300.0


@dataclass(frozen=True)
class TrainingSpec:
    """One supervised LoRA tuning run, with Vertex's hyperparameters already resolved."""

    base_model: str  # a resolved local model: folder path or Hugging Face id
    training_data: Path  # local JSONL file
    validation_data: Path | None
    output_dir: Path  # the engine writes checkpoints/ and adapter/ here
    epoch_count: int
    adapter_size: int  # LoRA rank: ADAPTER_SIZE_ONE=1 ... THIRTY_TWO=32
    learning_rate_multiplier: float
    seed: int = 0
    max_example_tokens: int = DEFAULT_MAX_EXAMPLE_TOKENS
    batch_size: int = 8
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S
    # Epochs after which the adapter is also saved as a servable checkpoint (Vertex's intermediate
    # checkpoints); the last epoch's is always one: the final adapter.
    export_epochs: tuple[int, ...] = ()
    # Continuous tuning: the adapter folder of an earlier run (same base, same rank) to start from.
    initial_adapter: Path | None = None


@dataclass(frozen=True)
class TrainingResult:
    adapter_dir: Path  # written only when the run finished (stopped is False)
    steps: int
    epochs_completed: int
    stopped: bool  # True when the reporter's should_stop() ended the run early


class TrainingReporter(Protocol):
    """Where a run sends what Vertex shows on a tuning job."""

    def data_stats(self, stats: dict) -> None:
        """Vertex's supervisedTuningDataStats (camelCase keys), once, before the first step."""

    def metrics(self, step: int, values: dict[str, float]) -> None:
        """"/train_*" values after every step, "/eval_*" values after every evaluation."""

    def progress(self, step: int, total_steps: int, epoch: int) -> None:
        """After every step; epoch counts from 1."""

    def should_stop(self) -> bool:
        """Checked between steps: True cancels the run."""

    def checkpoint(self, epoch: int, step: int, adapter_dir: Path) -> None:
        """A servable adapter was saved after `epoch` epochs (`step` steps); may come again for
        the same epoch when a resumed run redoes it."""

    def alive(self) -> None:
        """Called often during the long phases before training (tokenizing, hashing the data):
        the run is making progress."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: training cannot go on from there."""


class DatasetError(ValueError):
    """Unusable tuning data, located by file and line so a user can fix it."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}, line {line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")
