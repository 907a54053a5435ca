"""Helpers of the engine's tests: JSONL writers and a reporter that records everything."""

from __future__ import annotations

import json
from pathlib import Path

TOY_PAIRS = [("ping", "pong"), ("hello", "world"), ("yes", "no")]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def contents_example(question: str, answer: str, system: str | None = None) -> dict:
    record = {"contents": [{"role": "user", "parts": [{"text": question}]}, {"role": "model", "parts": [{"text": answer}]}]}
    if system is not None:
        record["systemInstruction"] = {"role": "system", "parts": [{"text": system}]}
    return record


class RecordingReporter:
    """A TrainingReporter that keeps everything and can ask to stop after a given step."""

    def __init__(self, stop_after_step: int | None = None):
        self.stats: dict | None = None
        self.metrics_log: list[tuple[int, dict]] = []
        self.progress_log: list[tuple[int, int, int]] = []
        self.stop_after_step = stop_after_step
        self.alive_calls = 0
        self.checkpoints: list[tuple[int, int, Path]] = []  # (epoch, step, adapter folder)

    def data_stats(self, stats: dict) -> None:
        self.stats = stats

    def metrics(self, step: int, values: dict) -> None:
        self.metrics_log.append((step, dict(values)))

    def progress(self, step: int, total_steps: int, epoch: int) -> None:
        self.progress_log.append((step, total_steps, epoch))

    def should_stop(self) -> bool:
        return self.stop_after_step is not None and len(self.progress_log) >= self.stop_after_step

    def alive(self) -> None:
        self.alive_calls += 1

    def checkpoint(self, epoch: int, step: int, adapter_dir: Path) -> None:
        self.checkpoints.append((epoch, step, Path(adapter_dir)))

    def series(self, name: str) -> list[float]:
        return [values[name] for _, values in self.metrics_log if name in values]
