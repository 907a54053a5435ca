"""Device, precision and threads, chosen once per process, and loading a base model onto them.

Matrix products run in bf16 autocast where the hardware multiplies bf16 natively: a GPU, or a CPU
with bf16 dot-product instructions (AVX512-BF16 or AMX). Elsewhere bf16 is emulated and slower
than fp32, so the CPU stays in fp32. Weights, LoRA adapters, optimizer state and the loss stay in
fp32 either way. TUNING_ENGINE_PRECISION=fp32 or bf16 overrides the choice; nothing in a job's
configuration changes it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Runtime:
    device: str  # "cuda" or "cpu"
    threads: int
    bf16: bool  # matrix products in bf16 autocast
    max_threads: int = 0  # above `threads`: training and decoding steps may use this many, as timing says

    def thread_chooser(self):
        """The thread count of each training or decoding step: `threads`, or whichever of
        `threads` and `max_threads` runs the steps faster as the machine's load comes and goes."""
        import torch

        from include.tuning_engine.threads import ThreadChooser

        return ThreadChooser(sorted({self.threads, max(self.threads, self.max_threads)}), torch.set_num_threads)

    def autocast(self):
        """bf16 autocast where the hardware has bf16 instructions, a no-op elsewhere."""
        import torch

        if self.bf16:
            return torch.autocast(self.device, dtype=torch.bfloat16)
        return contextlib.nullcontext()


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    """Pick the device and thread count once per process, on the engine's first use.

    To choose the CPU thread count, set TUNING_ENGINE_THREADS: a torch.set_num_threads call made
    before the engine's first use is overridden here. TUNING_ENGINE_MAX_THREADS, if larger, lets
    training and decoding steps use that many threads while they prove faster.
    """
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # Leave one core to the rest of the machine. Measured on the 2-core CPU, SmolLM2 LoRA steps:
    # idle, 2 threads gave 377 tokens/s and 1 thread 227; with other processes busy, 2 threads
    # fell to 12-40 tokens/s (each parallel region waits for a descheduled thread) while 1 thread
    # held 150-240. The local service's workers and generator time both (TUNING_ENGINE_MAX_THREADS).
    threads = int(os.environ.get("TUNING_ENGINE_THREADS", 0)) or max(1, len(os.sched_getaffinity(0)) - 1)
    max_threads = int(os.environ.get("TUNING_ENGINE_MAX_THREADS", 0))
    torch.set_num_threads(threads)
    return Runtime(device=device, threads=threads, bf16=_bf16_matmuls(device), max_threads=max_threads)


def _bf16_matmuls(device: str) -> bool:
    """Whether bf16 autocast pays here. Measured on a 2-core AVX512-BF16 CPU (SmolLM2-135M, one
    thread, CPU time): LoRA training steps 1.35x faster than fp32, greedy decoding 1.7x."""
    import torch

    choice = os.environ.get("TUNING_ENGINE_PRECISION", "").lower()
    if choice in ("fp32", "bf16"):
        return choice == "bf16"
    if choice:
        raise ValueError(f"TUNING_ENGINE_PRECISION must be fp32 or bf16, not {choice!r}")
    if device == "cuda":
        return True
    native = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # what oneDNN's bf16 kernels use
    return any(getattr(torch.cpu, name, lambda: False)() for name in native)


def load_tokenizer(base_model: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if len(tokenizer) == 0:
        raise RuntimeError(f"the tokenizer of {base_model} is empty")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(base_model: str):
    """The base causal LM in fp32 on the runtime's device, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    return model.to(runtime().device).eval()


def store_frozen_weights_in_bf16(model) -> None:
    """Under bf16 autocast a frozen fp32 weight is rounded to bf16 at every use; storing it in
    bf16 once gives the same numbers without the cast (a tenth of a CPU step, and for the
    49k-row output layer a cast at every decoded token) and halves its memory. An output layer
    that shares its weight with the input embeddings gets its own bf16 copy: the embeddings keep
    looking up fp32 rows."""
    import torch

    output_layer = model.get_output_embeddings()
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear) or module.weight.requires_grad:
            continue
        if module is output_layer:
            module.weight = torch.nn.Parameter(module.weight.detach().to(torch.bfloat16), requires_grad=False)
        else:
            module.to(torch.bfloat16)
