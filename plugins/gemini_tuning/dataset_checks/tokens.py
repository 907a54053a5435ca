"""Token counts with a real tokenizer, for the local backend (Gemini's are estimated).

The tokenizer is a local folder (never downloaded): the one of the model the local service
tunes. Fast tokenizers encode a whole batch in Rust, which keeps this affordable per example.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable


@lru_cache(maxsize=2)
def load_token_counter(tokenizer_dir: str) -> Callable[[list[str]], list[int]]:
    """Return a function counting the tokens of each text of a batch (cached per process)."""
    path = Path(tokenizer_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer folder not found: {tokenizer_dir}")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)

    def count(texts: list[str]) -> list[int]:
        encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)
        return [len(ids) for ids in encoded["input_ids"]]

    return count
