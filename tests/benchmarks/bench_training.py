"""Benchmark the tuning engine against TRL's SFTTrainer, and the tuned model's accuracy.

Speed (default): SmolLM2-135M-Instruct, the shipped classification sample, the same examples,
batch size, learning-rate schedule and LoRA rank, trained one after the other in this process:
  ours           include.tuning_engine.trainer.train
  trl-careful    SFTTrainer as a careful user sets it up on a CPU: fp32, no gradient
                 checkpointing, loss on the completion only
  trl-grouped    the same, with length-grouped batches (train_sampling_strategy="group_by_length")
  trl-careful-bf16  trl-careful in bf16 autocast, where ours runs in bf16 (a CPU with bf16 instructions)
  trl-defaults   SFTTrainer with its defaults (bf16, gradient checkpointing, its own LR), for reference
Each prints non-padding tokens per second of training (loading and evaluation excluded) and the
validation loss of the tuned model, measured by one evaluator (mean cross-entropy over the
model-turn tokens of the validation set). It also prints the FLOP/s ours achieves (FLOPs counted by torch's
FlopCounterMode on its own batches) against the peak: on a GPU its datasheet bf16 figure; on a CPU
threads x clock (/proc/cpuinfo) x vector lanes (AVX-512: 16 fp32) x 2 (an FMA is two FLOPs) x 2
FMA pipes, doubled for bf16 dot products, and against a large matrix product measured in the run.

Quality (--quality): tune SmolLM2 with the recommended hyperparameters on the classification
sample and print held-out exact-match accuracy of the base and the tuned model.

    source scripts/env.sh
    python tests/benchmarks/bench_training.py --steps 30
    python tests/benchmarks/bench_training.py --quality
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT_ROOT / "include" / "sample_data" / "classification"
LORA_RANK = 8
BATCH_SIZE = 8
# Peak bf16 dense matmul throughput, for MFU (H100/H200 SXM datasheet, without sparsity).
GPU_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12}


@dataclass
class Outcome:
    name: str
    tokens: int = 0
    step_seconds: list[float] = field(default_factory=list)
    validation_loss: float | None = None
    note: str = ""

    @property
    def seconds(self) -> float:
        return sum(self.step_seconds)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def median_tokens_per_second(self) -> float:
        """Less sensitive to other processes on a shared machine: median step time x steps."""
        if not self.step_seconds:
            return 0.0
        return self.tokens / (statistics.median(self.step_seconds) * len(self.step_seconds))


class TimingReporter:
    """Times each training step: from the stop check before it to the progress report after it."""

    def __init__(self):
        self.step_seconds: list[float] = []
        self.stats = {}
        self._tick = None

    def data_stats(self, stats):
        self.stats = stats

    def metrics(self, step, values):
        pass

    def progress(self, step, total_steps, epoch):
        self.step_seconds.append(time.perf_counter() - self._tick)

    def should_stop(self):
        self._tick = time.perf_counter()
        return False

    def checkpoint(self, epoch, step, adapter_dir):
        pass

    def alive(self):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps per trainer (batch size 8)")
    parser.add_argument("--default-steps", type=int, default=2, help="steps for the TRL-defaults reference runs")
    parser.add_argument("--learning-rate-multiplier", type=float, default=1.0)
    parser.add_argument("--quality", action="store_true", help="held-out accuracy of base vs tuned instead of speed")
    parser.add_argument("--epochs", type=int, help="--quality: override the recommended epoch count")
    parser.add_argument("--models-dir", type=Path, default=PROJECT_ROOT / ".local_vertex" / "models")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["ours", "trl-careful", "trl-grouped", "trl-careful-bf16", "trl-defaults",
                                 "trl-defaults+use_cpu"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from include.tuning_engine.models import resolve_base_model
    from tests.benchmarks.machine import describe

    model = resolve_base_model("smollm2", args.models_dir)
    print(f"{describe()}; load {os.getloadavg()}")
    if args.quality:
        quality(model, args.epochs)
    else:
        speed(model, args)


def speed(model: str, args) -> None:
    from include.tuning_engine.runtime import runtime
    from include.tuning_engine.trainer import BASE_LEARNING_RATE

    peak_lr = BASE_LEARNING_RATE * args.learning_rate_multiplier
    work = Path(tempfile.mkdtemp(prefix="bench-training-"))
    lines = (SAMPLE / "train.jsonl").read_text().splitlines()
    steps = min(args.steps, len(lines) // BATCH_SIZE)
    subset = work / "train.jsonl"
    subset.write_text("\n".join(lines[: steps * BATCH_SIZE]) + "\n")
    print(f"{steps} steps of {BATCH_SIZE} examples, LoRA rank {LORA_RANK}, peak LR {peak_lr:g}")

    default_steps = min(args.default_steps, steps)
    runs = {
        "ours": lambda: run_ours(model, subset, work, args.learning_rate_multiplier),
        "trl-careful": lambda: run_trl(model, subset, work, peak_lr, steps, "careful"),
        "trl-grouped": lambda: run_trl(model, subset, work, peak_lr, steps, "grouped"),
        "trl-careful-bf16": lambda: run_trl(model, subset, work, peak_lr, steps, "careful-bf16"),
        "trl-defaults": lambda: run_trl(model, subset, work, peak_lr, default_steps, "defaults"),
        "trl-defaults+use_cpu": lambda: run_trl(model, subset, work, peak_lr, default_steps, "defaults+use_cpu"),
    }
    outcomes = []
    for name, run in runs.items():
        if name in args.skip or (name == "trl-careful-bf16" and not (runtime().bf16 and runtime().device == "cpu")):
            continue
        print(f"--- {name}", flush=True)
        outcome = run()
        outcomes.append(outcome)
        print(f"{name}: {outcome.tokens_per_second:.1f} tokens/s, validation loss "
              f"{_fmt(outcome.validation_loss)} {outcome.note}", flush=True)
        if name == "trl-defaults" and not outcome.note.startswith("refused"):
            break  # the defaults ran as they are: no need for the use_cpu variant

    print("\n| trainer | steps | non-padding tokens | tokens/s (total time) | tokens/s (median step) "
          "| validation loss | note |")
    print("|---|---|---|---|---|---|---|")
    for outcome in outcomes:
        print(f"| {outcome.name} | {len(outcome.step_seconds)} | {outcome.tokens} | {outcome.tokens_per_second:.1f} "
              f"| {outcome.median_tokens_per_second:.1f} | {_fmt(outcome.validation_loss)} | {outcome.note} |")
    by_name = {outcome.name: outcome for outcome in outcomes}
    ours = by_name.get("ours")
    for name in ("trl-careful", "trl-grouped", "trl-careful-bf16"):
        trl = by_name.get(name)
        if ours is None or trl is None or not trl.seconds:
            continue
        print(f"\nspeed ratio ours / {name}: {ours.tokens_per_second / trl.tokens_per_second:.2f}x total time, "
              f"{ours.median_tokens_per_second / trl.median_tokens_per_second:.2f}x median step (goal >= 3x)")
        if ours.validation_loss is not None and trl.validation_loss is not None:
            change = (ours.validation_loss - trl.validation_loss) / trl.validation_loss
            print(f"validation loss ours vs {name}: {change:+.1%} (goal: no worse)")
    if ours is not None and ours.seconds:
        print(achieved_flops(model, subset, ours))
    print(f"load after: {os.getloadavg()}")


def run_ours(model: str, train_file: Path, work: Path, multiplier: float) -> Outcome:
    from peft import PeftModel

    from include.tuning_engine.runtime import load_model
    from include.tuning_engine.spec import TrainingSpec
    from include.tuning_engine.trainer import train

    reporter = TimingReporter()
    spec = TrainingSpec(base_model=model, training_data=train_file, validation_data=None,
                        output_dir=work / "ours", epoch_count=1, adapter_size=LORA_RANK,
                        learning_rate_multiplier=multiplier, batch_size=BATCH_SIZE)
    result = train(spec, reporter)
    tuned = PeftModel.from_pretrained(load_model(model), result.adapter_dir)
    tokens = reporter.stats["totalBillableTokenCount"]
    return Outcome("ours", tokens, reporter.step_seconds, validation_loss(tuned, model))


def achieved_flops(model: str, train_file: Path, ours: Outcome, sample_batches: int = 4) -> str:
    """FLOP/s of ours: FLOPs per non-padding token counted on a few of its batches (forward and
    backward, as it computes them), times its tokens, over its step time; against the peak."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from include.tuning_engine.batching import collate, length_grouped_batches
    from include.tuning_engine.dataset import load_examples
    from include.tuning_engine.runtime import load_model, load_tokenizer, runtime
    from include.tuning_engine.trainer import label_only_loss, with_lora

    tokenizer = load_tokenizer(model)
    examples = load_examples(train_file, tokenizer, 2048)
    lora = with_lora(load_model(model), rank=LORA_RANK).train()
    flops, tokens = 0, 0
    for indices in length_grouped_batches([len(e.input_ids) for e in examples], BATCH_SIZE, seed=0, epoch=0)[:sample_batches]:
        batch = collate([examples[i] for i in indices], tokenizer.pad_token_id, runtime().device)
        with FlopCounterMode(display=False) as counter, runtime().autocast():
            label_only_loss(lora, batch)[0].backward()
        flops += counter.get_total_flops()
        tokens += int(batch["attention_mask"].sum())
    achieved = flops / tokens * ours.tokens / ours.seconds
    line = f"ours: {flops / tokens / 1e6:.0f} MFLOP per token, {achieved / 1e9:.1f} GFLOP/s achieved"
    if runtime().device == "cuda":
        name = torch.cuda.get_device_name()
        peak = next((flops for gpu, flops in GPU_PEAK_FLOPS.items() if gpu in name), None)
        return line + (f", MFU {achieved / peak:.1%} of {name}" if peak else f" on {name}")
    from tests.benchmarks.machine import cpu_peak_flops, measured_matmul_flops

    peak = cpu_peak_flops(runtime().threads, bf16=runtime().bf16)
    ceiling = measured_matmul_flops(bf16=runtime().bf16)
    precision = "bf16" if runtime().bf16 else "fp32"
    return (line + f" ({precision}): {achieved / peak:.0%} of the {peak / 1e9:.0f} GFLOP/s peak of "
            f"{runtime().threads} thread(s), {achieved / ceiling:.0%} of a large {precision} matrix product "
            f"measured now ({ceiling / 1e9:.0f} GFLOP/s)")


def run_trl(model: str, train_file: Path, work: Path, peak_lr: float, steps: int, setup: str) -> Outcome:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from include.tuning_engine.conversation import chat_messages
    from include.tuning_engine.trainer import LORA_TARGETS, WARMUP_FRACTION

    name = f"trl-{setup}"
    rows = []
    for line in train_file.read_text().splitlines()[: steps * BATCH_SIZE]:
        messages = chat_messages(json.loads(line))
        rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
    lora = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, lora_dropout=0.0,
                      target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")
    on_gpu = torch.cuda.is_available()
    if setup in ("careful", "grouped", "careful-bf16"):
        settings = dict(
            per_device_train_batch_size=BATCH_SIZE, max_steps=steps,
            learning_rate=peak_lr, lr_scheduler_type="cosine", warmup_steps=max(1, int(WARMUP_FRACTION * steps)),
            weight_decay=0.0, max_grad_norm=1.0, bf16=on_gpu or setup == "careful-bf16", fp16=False,
            gradient_checkpointing=False, completion_only_loss=True, use_cpu=not on_gpu, save_strategy="no",
            report_to="none", logging_steps=10, seed=0, dataloader_pin_memory=False,
            train_sampling_strategy="group_by_length" if setup == "grouped" else "random",
        )
    else:  # what a user gets by passing only where to write (and, if it refuses, use_cpu)
        settings = dict(max_steps=steps, save_strategy="no", report_to="none",
                        **({"use_cpu": True} if setup == "defaults+use_cpu" else {}))

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.step_seconds, self.tick = [], None

        def on_step_begin(self, *unused, **kwargs):
            self.tick = time.perf_counter()

        def on_step_end(self, *unused, **kwargs):
            self.step_seconds.append(time.perf_counter() - self.tick)

    timer = StepTimer()
    try:
        config = SFTConfig(output_dir=str(work / name), **settings)
        base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
        trainer = SFTTrainer(model=base, args=config, train_dataset=Dataset.from_list(rows),
                             peft_config=lora, callbacks=[timer])
        trainer.train()
    except Exception as error:  # the defaults refuse to run on a CPU: report it, don't crash
        return Outcome(name, note=f"refused: {type(error).__name__}: {str(error)[:160]}")
    tokens = sum(len(row["input_ids"]) for row in trainer.train_dataset)
    careful = setup != "defaults" and setup != "defaults+use_cpu"
    note = "" if careful else f"{steps} steps only; its own LR {config.learning_rate:g}"
    return Outcome(name, tokens, timer.step_seconds, validation_loss(trainer.model.float(), model) if careful else None,
                   note)


def validation_loss(tuned, model: str) -> float:
    """One evaluator for every trainer: the engine's, over the validation sample's model turns."""
    from include.tuning_engine.dataset import load_examples
    from include.tuning_engine.runtime import load_tokenizer, runtime
    from include.tuning_engine.trainer import evaluate

    tokenizer = load_tokenizer(model)
    examples = load_examples(SAMPLE / "validation.jsonl", tokenizer, 2048)
    metrics = evaluate(tuned.to(runtime().device), examples, tokenizer.pad_token_id, BATCH_SIZE, TimingReporter())
    return metrics["/eval_total_loss"]


def quality(model: str, epochs: int | None = None) -> None:
    """Tune with the recommended hyperparameters; held-out exact match of base vs tuned."""
    from include.tuning_engine.generation import Generator
    from include.tuning_engine.recommended import adapter_rank, recommended_hyperparameters
    from include.tuning_engine.spec import TrainingSpec
    from include.tuning_engine.trainer import train

    train_file = SAMPLE / "train.jsonl"
    count = sum(1 for line in train_file.read_text().splitlines() if line.strip())
    recommended = recommended_hyperparameters(count)
    if epochs:
        recommended["epochCount"] = epochs
    print(f"{count} training examples, hyperparameters {recommended}")
    reporter = TimingReporter()
    spec = TrainingSpec(base_model=model, training_data=train_file, validation_data=SAMPLE / "validation.jsonl",
                        output_dir=Path(tempfile.mkdtemp(prefix="bench-quality-")),
                        epoch_count=recommended["epochCount"], adapter_size=adapter_rank(recommended["adapterSize"]),
                        learning_rate_multiplier=recommended["learningRateMultiplier"])
    started = time.perf_counter()
    result = train(spec, reporter)
    print(f"training: {sum(reporter.step_seconds):.0f} s of steps, {time.perf_counter() - started:.0f} s "
          f"with loading and evaluation, {result.steps} steps")

    generator = Generator()
    heldout = [json.loads(line) for line in (SAMPLE / "heldout.jsonl").read_text().splitlines() if line.strip()]
    for label, adapter in (("base", None), ("tuned", result.adapter_dir)):
        correct = 0
        for record in heldout:
            expected = record["contents"][-1]["parts"][0]["text"].strip()
            request = {**record, "contents": record["contents"][:-1],
                       "generationConfig": {"temperature": 0, "maxOutputTokens": 8}}
            answer = generator.generate(model, adapter, request)["candidates"][0]["content"]["parts"][0]["text"]
            correct += answer.strip() == expected
        print(f"{label}: held-out exact match {correct}/{len(heldout)} = {correct / len(heldout):.0%}", flush=True)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
