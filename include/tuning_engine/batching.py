"""Length-grouped batches: examples of similar length share a batch, so padding costs little.

Order is still random between epochs (random mega-chunks sorted by length, batches shuffled),
and fully determined by the seed and the epoch.
"""

from __future__ import annotations

import random

from include.tuning_engine.rendering import IGNORE_INDEX, TokenizedExample

_MEGA_CHUNK_BATCHES = 50  # sort within chunks of 50 batches, as transformers' LengthGroupedSampler


def length_grouped_batches(lengths: list[int], batch_size: int, *, seed: int, epoch: int) -> list[list[int]]:
    """Indices into `lengths`, grouped into batches of similar length, in a seeded random order."""
    rng = random.Random(f"{seed}-{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * _MEGA_CHUNK_BATCHES
    batches = []
    for start in range(0, len(order), chunk):
        by_length = sorted(order[start : start + chunk], key=lambda index: -lengths[index])
        batches += [by_length[i : i + batch_size] for i in range(0, len(by_length), batch_size)]
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Fixed batches of similar length, for evaluation."""
    by_length = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    return [by_length[i : i + batch_size] for i in range(0, len(by_length), batch_size)]


def collate(examples: list[TokenizedExample], pad_id: int, device: str) -> dict:
    """Right-padded tensors: input_ids, attention_mask, labels (IGNORE_INDEX on padding)."""
    import torch

    width = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example.input_ids)
        input_ids[row, :length] = torch.tensor(example.input_ids)
        labels[row, :length] = torch.tensor(example.labels)
        attention_mask[row, :length] = 1
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": attention_mask.to(device),
        "labels": labels.to(device),
    }
