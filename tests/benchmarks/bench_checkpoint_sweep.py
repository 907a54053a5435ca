"""An epoch sweep two ways: one job that keeps a checkpoint per epoch, against one job per epoch count.

The sweep [1, 2, 3] (or --sweep) on the shipped 520-example classification sample, through the
engine as the local service runs it, in one process:
  checkpoints   one run of max(sweep) epochs saving a servable adapter after each swept epoch
                (what the pipeline does now); the winner is the checkpoint with the lowest
                validation loss at its step
  per-epoch     one run per epoch count (what it did before); the winner is the run with the
                lowest final validation loss
Printed: seconds in train() of each way (steps, evaluation and saving) and of the steps alone,
their ratio, the chosen epoch count and its held-out exact match. The learning-rate schedule
spans the whole run, so checkpoint k of a 3-epoch run is not the same model as a k-epoch run:
the held-out scores say whether that costs anything.

    source scripts/env.sh
    python tests/benchmarks/bench_checkpoint_sweep.py [--model smollm2|tiny] [--sweep 1 2 3] [--torch-threads 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT))
SAMPLE = PROJECT_ROOT / "include" / "sample_data" / "classification"


class EvalRecorder:
    """Sums the training steps' seconds and keeps each validation loss and each saved checkpoint."""

    def __init__(self):
        self.step_seconds, self._tick = 0.0, 0.0
        self.eval_loss: dict[int, float] = {}
        self.checkpoints: list[tuple[int, int, Path]] = []

    def data_stats(self, stats):
        pass

    def metrics(self, step, values):
        if "/eval_total_loss" in values:
            self.eval_loss[step] = values["/eval_total_loss"]

    def progress(self, step, total_steps, epoch):
        self.step_seconds += time.perf_counter() - self._tick

    def should_stop(self):
        self._tick = time.perf_counter()
        return False

    def alive(self):
        pass

    def checkpoint(self, epoch, step, adapter_dir):
        self.checkpoints.append((epoch, step, Path(adapter_dir)))


def run(model: str, output_dir: Path, epochs: int, export_epochs: tuple[int, ...]) -> tuple[EvalRecorder, float]:
    from include.tuning_engine.recommended import ADAPTER_SIZE, LEARNING_RATE_MULTIPLIER, adapter_rank, recommended_schedule
    from include.tuning_engine.spec import TrainingSpec
    from include.tuning_engine.trainer import train

    count = sum(1 for line in (SAMPLE / "train.jsonl").read_text().splitlines() if line.strip())
    spec = TrainingSpec(base_model=model, training_data=SAMPLE / "train.jsonl",
                        validation_data=SAMPLE / "validation.jsonl", output_dir=output_dir, epoch_count=epochs,
                        adapter_size=adapter_rank(ADAPTER_SIZE), learning_rate_multiplier=LEARNING_RATE_MULTIPLIER,
                        batch_size=recommended_schedule(count, epoch_count=epochs).batch_size,
                        export_epochs=export_epochs)
    recorder = EvalRecorder()
    started = time.perf_counter()
    train(spec, recorder)
    return recorder, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="smollm2 (the bundled model), tiny, or a model folder")
    parser.add_argument("--sweep", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--models-dir", type=Path, default=PROJECT_ROOT / ".local_vertex" / "models")
    args = parser.parse_args()
    os.environ["TUNING_ENGINE_THREADS"] = str(args.torch_threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    from include.tuning_engine.generation import Generator
    from include.tuning_engine.runtime import runtime
    from tests.benchmarks.bench_small_data import exact_match

    work = Path(tempfile.mkdtemp(prefix="bench-checkpoint-sweep-"))
    if args.model == "tiny":
        from include.tuning_engine.tiny import build_tiny_model

        model = str(build_tiny_model(work / "tiny"))
    elif args.model == "smollm2":
        from include.tuning_engine.models import resolve_base_model

        model = resolve_base_model("smollm2", args.models_dir)
    else:
        model = args.model
    sweep = sorted(set(args.sweep))
    print(f"model {model}, sweep {sweep}, device {runtime().device}, torch threads {runtime().threads}, "
          f"load {os.getloadavg()}", flush=True)

    one, one_seconds = run(model, work / "checkpoints", sweep[-1], tuple(sweep))
    by_epoch = {epoch: (step, folder) for epoch, step, folder in one.checkpoints}
    losses = {epoch: one.eval_loss[step] for epoch, (step, _) in by_epoch.items()}
    chosen_checkpoint = min(sweep, key=lambda epoch: (losses[epoch], epoch))
    print(f"checkpoints: {one_seconds:.0f} s in train() ({one.step_seconds:.0f} s of steps); validation loss by "
          f"epoch {_losses(losses)}; chosen epoch {chosen_checkpoint}", flush=True)

    runs = {}
    for epochs in sweep:
        recorder, seconds = run(model, work / f"epochs-{epochs}", epochs, ())
        runs[epochs] = (recorder, seconds, recorder.checkpoints[-1][2])
        print(f"per-epoch: {epochs} epoch(s) {seconds:.0f} s in train() ({recorder.step_seconds:.0f} s of steps), "
              f"final validation loss {recorder.eval_loss[max(recorder.eval_loss)]:.4f}", flush=True)
    final_losses = {epochs: r.eval_loss[max(r.eval_loss)] for epochs, (r, _, _) in runs.items()}
    chosen_run = min(sweep, key=lambda epochs: (final_losses[epochs], epochs))
    per_epoch_seconds = sum(seconds for _, seconds, _ in runs.values())
    per_epoch_steps = sum(r.step_seconds for r, _, _ in runs.values())

    generator = Generator()
    heldout = SAMPLE / "heldout.jsonl"
    score_checkpoint = exact_match(generator, model, by_epoch[chosen_checkpoint][1], heldout)
    score_run = exact_match(generator, model, runs[chosen_run][2], heldout)
    print("\n| way | jobs | epochs trained | train() seconds | step seconds | chosen epoch | held-out exact match |")
    print("|---|---|---|---|---|---|---|")
    print(f"| checkpoints | 1 | {sweep[-1]} | {one_seconds:.0f} | {one.step_seconds:.0f} | {chosen_checkpoint} "
          f"| {score_checkpoint:.0%} |")
    print(f"| per-epoch | {len(sweep)} | {sum(sweep)} | {per_epoch_seconds:.0f} | {per_epoch_steps:.0f} | {chosen_run} "
          f"| {score_run:.0%} |")
    print(f"per-epoch / checkpoints: {per_epoch_seconds / one_seconds:.2f}x train() seconds, "
          f"{per_epoch_steps / one.step_seconds:.2f}x step seconds ({sum(sweep) / sweep[-1]:.2f}x epochs)")
    adapter_mb = sum(f.stat().st_size for _, _, folder in one.checkpoints for f in folder.iterdir()) / len(one.checkpoints) / 1e6
    print(f"disk: {adapter_mb:.1f} MB per checkpoint adapter; load after {os.getloadavg()}")


def _losses(losses: dict[int, float]) -> str:
    return ", ".join(f"{epoch}: {loss:.4f}" for epoch, loss in sorted(losses.items()))


if __name__ == "__main__":
    main()
