"""Supervised LoRA tuning, as a plain loop that reads top to bottom.

Why it is fast on a small CPU (see tests/benchmarks/bench_training.py):
- examples are batched by length, so almost no compute goes to padding;
- the output layer (49k tokens for SmolLM2, a large share of the cost) runs only at positions
  that have a label, not at every position of every sequence;
- the tokens a whole batch starts with (a shared system instruction) run once per batch;
- no gradient checkpointing (the model is small); bf16 matrix products where the CPU has them;
- the thread count of each step is the one that timing shows fastest under the machine's load.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path

from include.tuning_engine.batching import collate, length_grouped_batches, sorted_batches
from include.tuning_engine.checkpoints import load_latest_checkpoint, save_checkpoint, spec_fingerprint
from include.tuning_engine.dataset import data_stats, load_examples, steps_per_epoch
from include.tuning_engine.rendering import IGNORE_INDEX
from include.tuning_engine.runtime import load_model, load_tokenizer, runtime, store_frozen_weights_in_bf16
from include.tuning_engine.spec import TrainingDiverged, TrainingReporter, TrainingResult, TrainingSpec

log = logging.getLogger(__name__)

BASE_LEARNING_RATE = 1e-3  # scaled by the job's learningRateMultiplier
WARMUP_FRACTION = 0.05
MAX_GRAD_NORM = 1.0
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")  # attention projections (Llama naming)
MIN_SHARED_PREFIX = 4  # below this, a separate prefix pass costs more than it saves
# Evaluation keeps no activations for a backward pass, so it takes larger batches (sorted by
# length, so they stay tightly padded): fewer calls, and the shared prefix runs fewer times.
EVAL_BATCH_SIZE = 32


def train(spec: TrainingSpec, reporter: TrainingReporter) -> TrainingResult:
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from peft.utils import load_peft_weights

    started = time.monotonic()
    device = runtime().device
    checkpoint_dir = Path(spec.output_dir) / "checkpoints"
    adapter_dir = Path(spec.output_dir) / "adapter"

    # Data: tokenized once with the model's chat template; bad lines fail here, before any work.
    log.info("tokenizing the tuning data")
    tokenizer = load_tokenizer(spec.base_model)
    train_examples = load_examples(spec.training_data, tokenizer, spec.max_example_tokens, reporter.alive)
    eval_examples = (
        load_examples(spec.validation_data, tokenizer, spec.max_example_tokens, reporter.alive)
        if spec.validation_data else []
    )
    reporter.data_stats(data_stats(train_examples, epoch_count=spec.epoch_count, batch_size=spec.batch_size))
    batches_per_epoch = steps_per_epoch(len(train_examples), spec.batch_size)
    total_steps = spec.epoch_count * batches_per_epoch
    spent = {"tokenizing": time.monotonic() - started, "model loading": 0.0, "training steps": 0.0, "evaluation": 0.0}

    # Model: the frozen base with LoRA adapters on its attention projections.
    log.info("loading the base model")
    tick = time.monotonic()
    torch.manual_seed(spec.seed)
    model = with_lora(load_model(spec.base_model), rank=spec.adapter_size)
    if spec.initial_adapter is not None:
        log.info("continuing from the adapter in %s", spec.initial_adapter)
        set_peft_model_state_dict(model, load_peft_weights(str(spec.initial_adapter), device="cpu"))
    if runtime().bf16:
        store_frozen_weights_in_bf16(model)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    peak_lr = BASE_LEARNING_RATE * spec.learning_rate_multiplier
    optimizer = torch.optim.AdamW(trainable, lr=peak_lr, weight_decay=0.0)
    spent["model loading"] = time.monotonic() - tick

    # Resume from the newest checkpoint of this same run, if any.
    log.info("hashing the tuning data")
    fingerprint = spec_fingerprint(spec, reporter.alive)
    step, first_epoch, skip_batches = 0, 0, 0
    checkpoint = load_latest_checkpoint(checkpoint_dir, fingerprint)
    if checkpoint is not None:
        set_peft_model_state_dict(model, checkpoint["adapter"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step, first_epoch, skip_batches = checkpoint["step"], checkpoint["epoch"], checkpoint["batches_done"]
        log.info("resumed at epoch %d, step %d", first_epoch, step)

    def checkpoint_now(epochs_done: int, batches_done: int = 0) -> None:
        save_checkpoint(checkpoint_dir, fingerprint=fingerprint, epoch=epochs_done, step=step,
                        batches_done=batches_done, adapter_state=get_peft_model_state_dict(model),
                        optimizer=optimizer)

    lengths = [len(example.input_ids) for example in train_examples]
    threads = runtime().thread_chooser()
    last_checkpoint = time.monotonic()
    for epoch in range(first_epoch, spec.epoch_count):
        model.train()
        batches = length_grouped_batches(lengths, spec.batch_size, seed=spec.seed, epoch=epoch)
        for batch_number, indices in enumerate(batches, start=1):
            if epoch == first_epoch and batch_number <= skip_batches:
                continue  # done before the checkpoint this run resumed from
            if reporter.should_stop():
                log.info("stopped at step %d of %d", step, total_steps)
                return TrainingResult(adapter_dir, step, epoch, stopped=True)
            thread_count = threads.next_count()
            tick = time.monotonic()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total_steps, peak_lr)
            batch = collate([train_examples[i] for i in indices], tokenizer.pad_token_id, device)
            with runtime().autocast():
                loss, correct, predictions = label_only_loss(model, batch)
            loss_value = finite(loss.item(), "training", step + 1, epoch + 1)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1

            tokens = int(batch["attention_mask"].sum())
            seconds = time.monotonic() - tick
            threads.record(seconds, tokens)
            spent["training steps"] += seconds
            reporter.metrics(step, {
                "/train_total_loss": loss_value,
                "/train_fraction_of_correct_next_step_preds": correct / max(predictions, 1),
                "/train_num_predictions": float(predictions),
            })
            reporter.progress(step, total_steps, epoch + 1)
            log.info("step %d/%d loss %.4f | %.0f ms | %.0f tokens/s | threads %d", step, total_steps, loss_value,
                     seconds * 1000, tokens / seconds, thread_count)
            if batch_number < len(batches) and time.monotonic() - last_checkpoint >= spec.checkpoint_interval_s:
                checkpoint_now(epoch, batch_number)
                last_checkpoint = time.monotonic()
                log.info("checkpoint at step %d (epoch %d, batch %d)", step, epoch + 1, batch_number)

        if eval_examples:
            threads.use_best()  # evaluation runs at the count that trains fastest now
            tick = time.monotonic()
            eval_metrics = evaluate(model, eval_examples, tokenizer.pad_token_id, spec.batch_size, reporter)
            spent["evaluation"] += time.monotonic() - tick
            if eval_metrics is None:
                return TrainingResult(adapter_dir, step, epoch, stopped=True)
            finite(eval_metrics["/eval_total_loss"], "validation", step, epoch + 1)
            reporter.metrics(step, eval_metrics)
            log.info("epoch %d eval loss %.4f", epoch + 1, eval_metrics["/eval_total_loss"])
        if epoch + 1 in spec.export_epochs and epoch + 1 < spec.epoch_count:
            # Before the resume checkpoint: a stop in between redoes the epoch and this save.
            exported = Path(spec.output_dir) / exported_adapter_name(epoch + 1)
            save_adapter(model, exported)
            reporter.checkpoint(epoch + 1, step, exported)
            log.info("servable checkpoint after epoch %d (step %d) in %s", epoch + 1, step, exported)
        checkpoint_now(epoch + 1)
        last_checkpoint = time.monotonic()

    log.info("saving the adapter")
    save_adapter(model, adapter_dir)
    reporter.checkpoint(spec.epoch_count, step, adapter_dir)
    log.info("tuned %d steps in %.0f s; adapter in %s", step, time.monotonic() - started, adapter_dir)
    log.info("time spent: %s", time_spent(spent, time.monotonic() - started))
    if threads.adaptive:
        log.info("threads: %s", threads.summary())
    return TrainingResult(adapter_dir, step, spec.epoch_count, stopped=False)


def time_spent(spent: dict[str, float], total: float) -> str:
    """Where a run's time went, for its log: each phase, and the rest (data hashing,
    checkpoints, saving)."""
    phases = [f"{name} {seconds:.1f} s" for name, seconds in spent.items()]
    return ", ".join([*phases, f"other {max(0.0, total - sum(spent.values())):.1f} s"])


def finite(loss: float, which: str, step: int, epoch: int) -> float:
    """`loss` if it is a number; TrainingDiverged, which fails the job with a clear reason, if not."""
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"the {which} loss became {loss} at step {step} (epoch {epoch}): training diverged; "
            "try a smaller learningRateMultiplier"
        )
    return loss


def with_lora(model, rank: int):
    """Wrap `model` with trainable rank-`rank` LoRA adapters on its attention projections."""
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [name for name in LORA_TARGETS if name in present] or None  # None: peft's default per architecture
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def label_only_loss(model, batch: dict):
    """Mean cross-entropy over labelled next-token predictions, with the output layer applied
    only where there is a label. Returns (loss, correct predictions, predictions)."""
    import torch.nn.functional as F

    causal_lm = model.get_base_model()
    # The last position predicts nothing, so the decoder never needs to see it.
    hidden = decoder_hidden_states(causal_lm.get_decoder(), batch["input_ids"][:, :-1], batch["attention_mask"][:, :-1])
    targets = batch["labels"][:, 1:]
    where = targets != IGNORE_INDEX
    logits = causal_lm.get_output_embeddings()(hidden[where]).float()
    labels = targets[where]
    if labels.numel() == 0:  # no labelled token left (only with a max_example_tokens of a few tokens)
        return hidden.sum() * 0.0, 0, 0
    loss = F.cross_entropy(logits, labels)
    correct = int((logits.argmax(dim=-1) == labels).sum())
    return loss, correct, int(labels.numel())


def decoder_hidden_states(decoder, input_ids, attention_mask):
    """Last hidden states of a right-padded batch, running the tokens that every example starts
    with (a shared system instruction, say) once, not once per example.

    Causal attention makes this exact: the prefix never sees what follows, and the rest of each
    example attends to the prefix's keys and values, through which gradients flow back.
    """
    import torch

    shared = shared_prefix_length(input_ids, attention_mask)
    if shared < MIN_SHARED_PREFIX:
        return decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    prefix = decoder(input_ids=input_ids[:1, :shared], use_cache=True)
    cache = prefix.cache
    cache.batch_repeat_interleave(len(input_ids))
    rest = decoder(input_ids=input_ids[:, shared:], attention_mask=attention_mask, cache=cache, use_cache=True)
    return torch.cat([prefix.last_hidden_state.expand(len(input_ids), -1, -1), rest.last_hidden_state], dim=1)


def shared_prefix_length(input_ids, attention_mask) -> int:
    """How many leading tokens all rows share, leaving every row at least one token of its own."""
    if len(input_ids) < 2:
        return 0
    differs = ((input_ids != input_ids[:1]) | (attention_mask == 0)).any(dim=0)
    first_difference = int(differs.int().argmax()) if bool(differs.any()) else input_ids.shape[1]
    return min(first_difference, int(attention_mask.sum(dim=1).min()) - 1)


def evaluate(model, examples, pad_id: int, batch_size: int, reporter: TrainingReporter) -> dict | None:
    """The three /eval_* metrics over `examples`; None if the run was cancelled meanwhile.
    Batches hold at least EVAL_BATCH_SIZE examples (`batch_size` if larger)."""
    import torch

    model.eval()
    total_loss, total_correct, total_predictions = 0.0, 0, 0
    lengths = [len(example.input_ids) for example in examples]
    with torch.inference_mode():
        for indices in sorted_batches(lengths, max(batch_size, EVAL_BATCH_SIZE)):
            if reporter.should_stop():
                return None
            batch = collate([examples[i] for i in indices], pad_id, runtime().device)
            with runtime().autocast():
                loss, correct, predictions = label_only_loss(model, batch)
            total_loss += loss.item() * predictions
            total_correct += correct
            total_predictions += predictions
    return {
        "/eval_total_loss": total_loss / max(total_predictions, 1),
        "/eval_fraction_of_correct_next_step_preds": total_correct / max(total_predictions, 1),
        "/eval_num_predictions": float(total_predictions),
    }


def learning_rate(step: int, total_steps: int, peak: float) -> float:
    """Linear warmup, then cosine decay to zero (as transformers' "cosine" schedule)."""
    warmup = max(1, int(WARMUP_FRACTION * total_steps))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def exported_adapter_name(epochs_done: int) -> str:
    """The folder, beside the final `adapter/`, of the servable adapter saved after an epoch."""
    return f"adapter-epoch-{epochs_done:04d}"


def save_adapter(model, adapter_dir: Path) -> None:
    """Write the adapter folder by rename, so the generator never loads a partial one."""
    staging = adapter_dir.with_name(adapter_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    os.replace(staging, adapter_dir)
