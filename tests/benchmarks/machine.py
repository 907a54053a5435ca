"""The machine a benchmark's figures were measured on, in the terms those figures depend on.

A CPU's figures move with the processor more than with our code (the README's Benchmarks
section has the same batching on two CPUs), so each benchmark names the processor, the
precision the engine chose on it, and what a large matrix product reaches there now, next to
its figures.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def cpu_info(field: str) -> str:
    """The first value of `field` in /proc/cpuinfo ("" where there is none)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        name, _, value = line.partition(":")
        if name.strip() == field:
            return value.strip()
    return ""


def cpu_peak_flops(threads: int, bf16: bool) -> float:
    """threads x clock x lanes x 2 (FMA) x 2 FMA pipes, from /proc/cpuinfo; x2 for bf16 dot products."""
    flags = set(cpu_info("flags").split())
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4  # fp32 lanes of the widest FMA
    return threads * float(cpu_info("cpu MHz")) * 1e6 * lanes * 2 * 2 * (2 if bf16 else 1)


def measured_matmul_flops(bf16: bool, size: int = 1024, repeats: int = 10) -> float:
    """FLOP/s of a large square matrix product on this CPU now: the practical ceiling."""
    import torch

    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def describe() -> str:
    """One line: device, processor, cores, the engine's precision, and a large product's FLOP/s
    at the engine's thread count (the local service's processes make the same choices)."""
    import torch

    from include.tuning_engine.runtime import runtime

    if runtime().device == "cuda":
        return f"cuda: {torch.cuda.get_device_name()}, bf16"
    precision = "bf16 (the CPU has bf16 dot products)" if runtime().bf16 else "fp32 (no bf16 dot products)"
    ceiling = measured_matmul_flops(bf16=runtime().bf16)
    threads = runtime().threads
    return (f"cpu: {cpu_info('model name') or 'unknown'}, {len(os.sched_getaffinity(0))} cores, {precision}, "
            f"a large matrix product {ceiling / 1e9:.0f} GFLOP/s on {threads} thread{'s' if threads > 1 else ''}")
