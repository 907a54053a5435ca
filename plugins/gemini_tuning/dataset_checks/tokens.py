"""Token counts: a real tokenizer for the local backend, and the backend's countTokens where an
estimate is too close to a limit to trust.

The tokenizer is a local folder (never downloaded): the one of the model the local service
tunes. Fast tokenizers encode a whole batch in Rust, which keeps this affordable per example.

Without a tokenizer, tokens are estimated at 4 characters a token. That estimate is off by up
to 4x either way (about 1 character a token in Chinese or Japanese, 6-8 in repetitive text), so
an example whose estimate falls between a quarter of the limit and twice the limit is counted
by the backend's own `countTokens` (Vertex AI's, or the local service's) for the base model
being tuned, before the check calls it too long or fine.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from gemini_tuning.dataset_checks.features import FeatureTable

log = logging.getLogger(__name__)
NEAR_LIMIT = (0.25, 2.0)  # estimates in [limit * low, limit * high] are confirmed
MAX_CONFIRMATIONS = 200  # countTokens calls per file; the rest keep their estimate (and a warning)
ExampleCounter = Callable[[dict], int]


@lru_cache(maxsize=2)
def load_token_counter(tokenizer_dir: str) -> Callable[[list[str]], list[int]]:
    """Return a function counting the tokens of each text of a batch (cached per process)."""
    path = Path(tokenizer_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer folder not found: {tokenizer_dir}")
    if (path / "tokenizer.json").is_file():
        # The fast tokenizer's own library: the same ids as transformers' fast tokenizer, without
        # importing torch and transformers (seconds, more than the checks of a small dataset).
        from tokenizers import Tokenizer

        fast = Tokenizer.from_file(str(path / "tokenizer.json"))

        def count_fast(texts: list[str]) -> list[int]:
            return [len(encoding.ids) for encoding in fast.encode_batch(texts, add_special_tokens=False)]

        return count_fast
    from transformers import AutoTokenizer  # a slow (e.g. sentencepiece-only) tokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)

    def count(texts: list[str]) -> list[int]:
        encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)
        return [len(ids) for ids in encoded["input_ids"]]

    return count


def backend_example_counter(base_model: str, gcp_conn_id: str) -> ExampleCounter:
    """Counts one dataset example's tokens with countTokens on `base_model`, through the tuning hook."""
    client = None

    def count(example: dict) -> int:
        nonlocal client
        from google.genai import types

        if client is None:  # only when an example is near a limit
            from gemini_tuning.hooks.tuning import GenAITuningHook

            client = GenAITuningHook(gcp_conn_id=gcp_conn_id).client
        contents, system = example_request(example)
        config = types.CountTokensConfig(system_instruction=system) if system else None
        return client.models.count_tokens(model=base_model, contents=contents, config=config).total_tokens

    return count


def example_request(example: dict) -> tuple[list[dict], dict | None]:
    """A dataset line (current `contents` or legacy `messages`) as countTokens' contents and system instruction."""
    if "messages" in example and "contents" not in example:
        turns = [{"role": m["role"], "parts": [{"text": m["content"]}]} for m in example["messages"]]
        system = [turn for turn in turns if turn["role"] == "system"]
        return [turn for turn in turns if turn["role"] != "system"], ({"parts": system[0]["parts"]} if system else None)
    system = example.get("systemInstruction", example.get("system_instruction"))
    if isinstance(system, dict):
        system = {"parts": system.get("parts", [])}
    return example["contents"], system


def confirm_estimates_near_limit(table: FeatureTable, path: str | Path, limit: int, count: ExampleCounter) -> int:
    """Replace the estimates near `limit` in `table` by the backend's counts; returns how many were counted."""
    import orjson

    frame = table.frame
    tokens = frame["tokens"]
    low, high = NEAR_LIMIT
    near = frame.index[frame["parsed"] & (tokens >= limit * low) & (tokens <= limit * high)]
    if len(near) > MAX_CONFIRMATIONS:
        log.warning("%s: %d examples have token estimates near the limit of %d; counting the first %d with "
                    "countTokens, the others keep their estimate", table.path, len(near), limit, MAX_CONFIRMATIONS)
        near = near[:MAX_CONFIRMATIONS]
    with open(path, "rb") as stream:
        for row in near:
            stream.seek(int(frame.at[row, "offset"]))
            example = orjson.loads(stream.read(int(frame.at[row, "bytes"])).removeprefix(b"\xef\xbb\xbf"))
            frame.at[row, "tokens"] = count(example)
    if len(near):
        log.info("%s: %d token estimates near the limit of %d confirmed with countTokens", table.path, len(near), limit)
    return len(near)
