"""A JSONL tuning file -> tokenized examples, and Vertex's statistics about them."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Callable

from include.tuning_engine.conversation import chat_messages
from include.tuning_engine.rendering import TokenizedExample, render_example
from include.tuning_engine.spec import DatasetError

TRUNCATED_INDEX_SAMPLE = 100  # Vertex reports "a partial sample" of truncated example indices
HISTOGRAM_BUCKETS = 10
_ALIVE_EVERY_LINES = 256


def load_examples(path: Path, tokenizer, max_tokens: int,
                  alive: Callable[[], None] | None = None) -> list[TokenizedExample]:
    """Read and tokenize every example; a bad line raises DatasetError with its line number.

    `alive` is called every few hundred lines: a large file takes minutes to tokenize.
    """
    path = Path(path)
    examples = []
    try:
        with path.open(encoding="utf-8") as lines:
            for line_number, line in enumerate(lines, start=1):
                if alive is not None and line_number % _ALIVE_EVERY_LINES == 0:
                    alive()
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DatasetError(path, line_number, f"not valid JSON: {error.msg} (column {error.colno})") from None
                try:
                    examples.append(render_example(tokenizer, chat_messages(record), max_tokens))
                except ValueError as error:
                    raise DatasetError(path, line_number, str(error)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(path, None, f"cannot read the file: {error}") from None
    if not examples:
        raise DatasetError(path, None, "the file holds no examples")
    return examples


def steps_per_epoch(example_count: int, batch_size: int) -> int:
    return math.ceil(example_count / batch_size)


def data_stats(examples: list[TokenizedExample], *, epoch_count: int, batch_size: int) -> dict:
    """Vertex's supervisedTuningDataStats, counted with the real tokenizer (after truncation)."""
    truncated = [index for index, example in enumerate(examples, start=1) if example.truncated]
    return {
        "tuningDatasetExampleCount": len(examples),
        "totalTuningCharacterCount": sum(example.character_count for example in examples),
        "totalBillableTokenCount": sum(len(example.input_ids) for example in examples),
        "tuningStepCount": epoch_count * steps_per_epoch(len(examples), batch_size),
        "userInputTokenDistribution": distribution([example.input_token_count for example in examples]),
        "userOutputTokenDistribution": distribution([example.output_token_count for example in examples]),
        "userMessagePerExampleDistribution": distribution([example.message_count for example in examples]),
        "totalTruncatedExampleCount": len(truncated),
        "truncatedExampleIndices": truncated[:TRUNCATED_INDEX_SAMPLE],
    }


def distribution(values: list[int]) -> dict:
    """Vertex's SupervisedTuningDatasetDistribution of per-example counts."""
    ordered = sorted(values)
    low, high = ordered[0], ordered[-1]
    width = max((high - low) / HISTOGRAM_BUCKETS, 1)
    bucket_count = max(1, min(HISTOGRAM_BUCKETS, math.ceil((high - low) / width) or 1))
    counts = [0] * bucket_count
    for value in ordered:
        counts[min(int((value - low) / width), bucket_count - 1)] += 1
    return {
        "sum": sum(ordered),
        "billableSum": sum(ordered),
        "min": float(low),
        "max": float(high),
        "mean": statistics.fmean(ordered),
        "median": float(statistics.median(ordered)),
        "p5": _percentile(ordered, 5),
        "p95": _percentile(ordered, 95),
        "buckets": [
            {"count": count, "left": low + i * width, "right": low + (i + 1) * width}
            for i, count in enumerate(counts)
        ],
    }


def _percentile(ordered: list[int], percent: float) -> float:
    """Linear interpolation between closest ranks, like numpy's default."""
    position = (len(ordered) - 1) * percent / 100
    below, above = math.floor(position), math.ceil(position)
    return float(ordered[below] + (ordered[above] - ordered[below]) * (position - below))
