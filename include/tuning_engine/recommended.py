"""Hyperparameters the local service uses when a job leaves them unset.

Vertex's guidance is 2-4 epochs, fewer on large sets. Measured with the engine's base learning
rate (1e-3, LoRA rank 8) on SmolLM2-135M and the shipped classification sample (520 examples,
2-core CPU shared with other work, load ~3; tests/benchmarks/bench_training.py --quality):
2 epochs -> 100/100 held-out exact match in 316 s of training steps; 1 epoch -> 97/100 in
174 s; the untuned base -> 0/100.
"""

from __future__ import annotations

ADAPTER_SIZES = {
    "ADAPTER_SIZE_ONE": 1,
    "ADAPTER_SIZE_TWO": 2,
    "ADAPTER_SIZE_FOUR": 4,
    "ADAPTER_SIZE_EIGHT": 8,
    "ADAPTER_SIZE_SIXTEEN": 16,
    "ADAPTER_SIZE_THIRTY_TWO": 32,
}


def adapter_rank(adapter_size: str) -> int:
    """LoRA rank for a Vertex adapterSize enum value."""
    try:
        return ADAPTER_SIZES[adapter_size]
    except KeyError:
        raise ValueError(f"adapterSize must be one of {', '.join(ADAPTER_SIZES)}, not {adapter_size!r}") from None


def recommended_hyperparameters(example_count: int) -> dict:
    """Vertex-shaped hyperParameters for a training set of `example_count` examples."""
    if example_count < 1:
        raise ValueError("a tuning set needs at least one example")
    # Small sets need more passes to learn anything; large ones overfit with many.
    epochs = 3 if example_count < 300 else 2 if example_count < 2000 else 1
    return {
        "epochCount": epochs,
        "adapterSize": "ADAPTER_SIZE_EIGHT",
        "learningRateMultiplier": 1.0,
    }
