"""Device, precision and threads, chosen once per process, and loading a base model onto them.

A GPU runs in bf16 autocast; a CPU stays in fp32 (this project's CPUs have no bf16
instructions, where bf16 is slower than fp32). Nothing in a job's configuration changes.
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

    def autocast(self):
        """bf16 autocast on a GPU, a no-op on a CPU."""
        import torch

        if self.device == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    """Pick the device and thread count once per process, on the engine's first use.

    To choose the CPU thread count, set TUNING_ENGINE_THREADS: a torch.set_num_threads call made
    before the engine's first use is overridden here.
    """
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # Leave one core to the rest of the machine. Measured on the 2-core CPU, SmolLM2 LoRA steps:
    # idle, 2 threads gave 377 tokens/s and 1 thread 227; with other processes busy, 2 threads
    # fell to 12-40 tokens/s (each parallel region waits for a descheduled thread) while 1 thread
    # held 150-240. Where the CPU is yours alone, TUNING_ENGINE_THREADS=2 is the faster choice.
    threads = int(os.environ.get("TUNING_ENGINE_THREADS", 0)) or max(1, len(os.sched_getaffinity(0)) - 1)
    torch.set_num_threads(threads)
    return Runtime(device=device, threads=threads)


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
