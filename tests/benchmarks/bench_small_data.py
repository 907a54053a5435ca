"""Tuning quality on small datasets: held-out exact match of base and tuned SmolLM2 per task.

Each task of include/sample_data/small_tasks.py (100-160 training examples, 5-20 classes, or a
short extraction) is tuned through the engine with the recommended settings, and scored on its
held-out split, which no tuning and no choice of settings sees (choices are read off the
validation column). Two settings, trained one after the other in the same process:
  before   what the pipeline recommended before: 2 epochs for sets under 1000 examples, batch 8
  after    include.tuning_engine.recommended.recommended_schedule
"custom" trains with --epochs, --batch-size and --learning-rate-multiplier, to compare a candidate
rule on the validation column. "sample520" is the shipped 520-example classification sample, for the no-loss check.
Seconds are those of the training steps (loading and per-epoch evaluation excluded), then the
whole train() call; use the same --torch-threads when comparing runs.

    source scripts/env.sh
    python tests/benchmarks/bench_small_data.py --torch-threads 1 [--tasks intents10 extraction] [--settings after]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT_ROOT / "include" / "sample_data" / "classification"
BEFORE_EPOCHS, BEFORE_BATCH_SIZE = 2, 8  # the pipeline's recommendation for 100-999 examples until issue 18


@dataclass
class Scores:
    validation: float | None  # None: not measured
    heldout: float | None


class StepTimer:
    """Sums the seconds of training steps: from the stop check before each to its progress report."""

    def __init__(self):
        self.seconds, self._tick = 0.0, 0.0

    def data_stats(self, stats):
        pass

    def metrics(self, step, values):
        pass

    def progress(self, step, total_steps, epoch):
        self.seconds += time.perf_counter() - self._tick

    def should_stop(self):
        self._tick = time.perf_counter()
        return False


def main() -> None:
    from include.sample_data.small_tasks import TASKS

    names = [task.name for task in TASKS] + ["sample520"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="*", choices=names, default=[task.name for task in TASKS])
    parser.add_argument("--settings", choices=["before", "after", "both", "custom"], default="both")
    parser.add_argument("--epochs", type=int, default=2, help="--settings custom")
    parser.add_argument("--batch-size", type=int, default=8, help="--settings custom")
    parser.add_argument("--learning-rate-multiplier", type=float, default=1.0, help="--settings custom")
    parser.add_argument("--no-base", action="store_true", help="skip scoring the base model (it does not change)")
    parser.add_argument("--torch-threads", type=int, default=1, help="CPU threads (TUNING_ENGINE_THREADS)")
    parser.add_argument("--models-dir", type=Path, default=PROJECT_ROOT / ".local_vertex" / "models")
    args = parser.parse_args()
    os.environ["TUNING_ENGINE_THREADS"] = str(args.torch_threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    from include.sample_data.small_tasks import write_task
    from include.tuning_engine.generation import Generator
    from include.tuning_engine.models import resolve_base_model
    from include.tuning_engine.runtime import runtime

    model = resolve_base_model("smollm2", args.models_dir)
    print(f"device {runtime().device}, torch threads {runtime().threads}, load {os.getloadavg()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-small-data-"))
    generator = Generator()
    settings = ["before", "after"] if args.settings == "both" else [args.settings]
    rows = []
    for name in args.tasks:
        if name == "sample520":
            files = {split: SAMPLE / f"{split}.jsonl" for split in ("train", "validation", "heldout")}
        else:
            files = write_task(next(task for task in TASKS if task.name == name), work)
        count = len(_records(files["train"]))
        base = Scores(None, None) if args.no_base else score(generator, model, None, files)
        print(f"{name}: {count} training examples; base validation {_pct(base.validation)}, "
              f"held-out {_pct(base.heldout)}", flush=True)
        for setting in settings:
            epochs, batch_size, multiplier, why = _schedule(setting, count, args)
            timer = StepTimer()
            started = time.perf_counter()
            result = tune(model, files, work / f"{name}-{setting}", epochs, batch_size, multiplier, timer)
            total = time.perf_counter() - started
            tuned = score(generator, model, result.adapter_dir, files)
            rows.append((name, setting, count, base, tuned, epochs, batch_size, result.steps, timer.seconds, total))
            print(f"  {setting}: {why}; tuned validation {tuned.validation:.0%}, held-out {tuned.heldout:.0%}; "
                  f"{timer.seconds:.0f} s of steps, {total:.0f} s in train()", flush=True)

    print("\n| task | settings | train examples | base held-out | tuned validation | tuned held-out "
          "| epochs | batch | steps | step seconds | train() seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, setting, count, base, tuned, epochs, batch_size, steps, seconds, total in rows:
        print(f"| {name} | {setting} | {count} | {_pct(base.heldout)} | {tuned.validation:.0%} | {tuned.heldout:.0%} "
              f"| {epochs} | {batch_size} | {steps} | {seconds:.0f} | {total:.0f} |")
    by_key = {(row[0], row[1]): row for row in rows}
    for name in args.tasks:
        if (name, "before") in by_key and (name, "after") in by_key:
            before, after = by_key[(name, "before")], by_key[(name, "after")]
            print(f"{name}: time after / before {after[8] / before[8]:.2f}x steps, {after[9] / before[9]:.2f}x "
                  f"train() (goal <= 1.5x); held-out {before[4].heldout:.0%} -> {after[4].heldout:.0%} (goal >= 90%)")
    print(f"load after: {os.getloadavg()}")


def _schedule(setting: str, count: int, args) -> tuple[int, int, float, str]:
    """(epochs, batch size, learning-rate multiplier, why) of one setting."""
    from include.tuning_engine.recommended import LEARNING_RATE_MULTIPLIER, recommended_schedule

    if setting == "before":
        return (BEFORE_EPOCHS, BEFORE_BATCH_SIZE, LEARNING_RATE_MULTIPLIER,
                f"{BEFORE_EPOCHS} epochs at batch {BEFORE_BATCH_SIZE}")
    if setting == "custom":
        return (args.epochs, args.batch_size, args.learning_rate_multiplier,
                f"{args.epochs} epochs at batch {args.batch_size}, multiplier {args.learning_rate_multiplier:g}")
    schedule = recommended_schedule(count)
    return schedule.epoch_count, schedule.batch_size, LEARNING_RATE_MULTIPLIER, schedule.reason


def tune(model: str, files: dict, output_dir: Path, epochs: int, batch_size: int, multiplier: float,
         timer: StepTimer):
    from include.tuning_engine.recommended import ADAPTER_SIZE, adapter_rank
    from include.tuning_engine.spec import TrainingSpec
    from include.tuning_engine.trainer import train

    spec = TrainingSpec(base_model=model, training_data=files["train"], validation_data=files["validation"],
                        output_dir=output_dir, epoch_count=epochs, adapter_size=adapter_rank(ADAPTER_SIZE),
                        learning_rate_multiplier=multiplier, batch_size=batch_size)
    return train(spec, timer)


def score(generator, model: str, adapter: Path | None, files: dict) -> Scores:
    return Scores(exact_match(generator, model, adapter, files["validation"]),
                  exact_match(generator, model, adapter, files["heldout"]))


def exact_match(generator, model: str, adapter: Path | None, path: Path) -> float:
    """Greedy answers that equal the example's model turn, after stripping spaces.

    Answers are cut two tokens past the longest expected one: a longer answer cannot match.
    """
    from include.tuning_engine.runtime import load_tokenizer

    records = _records(path)
    tokenizer = load_tokenizer(model)
    expected_answers = [record["contents"][-1]["parts"][0]["text"].strip() for record in records]
    max_tokens = 2 + max(len(tokenizer(answer)["input_ids"]) for answer in expected_answers)
    correct = 0
    for record, expected in zip(records, expected_answers):
        request = {**record, "contents": record["contents"][:-1],
                   "generationConfig": {"temperature": 0, "maxOutputTokens": max_tokens}}
        answer = generator.generate(model, adapter, request)["candidates"][0]["content"]["parts"][0]["text"]
        correct += answer.strip() == expected
    return correct / len(records)


def _pct(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction:.0%}"


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    main()
