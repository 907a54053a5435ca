"""
Smoke-test prompts, with their expected answers where known, from a list, a file or a dataset.

Accepted per prompt (a list item or a JSONL line):
- a plain string (a list item, or a line of a ``.txt`` file): no expected answer;
- ``{"prompt": "...", "expected": "...", "systemInstruction": "..."}`` (expected optional);
- a tuning example in Vertex's current format (``systemInstruction`` + ``contents``) or the legacy
  ``messages`` format: the turns before the last ``model`` turn are the prompt, that turn's text
  is the expected answer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gemini_tuning.dataset_checks.source import GCS_CONN_ID, read_text


@dataclass(frozen=True)
class SmokePrompt:
    """One generateContent request of the smoke test and the answer it should give, if known."""

    contents: list[dict[str, Any]]
    system_instruction: str | None = None
    expected: str | None = None

    @property
    def text(self) -> str:
        """The last user turn, for reports."""
        return "".join(part.get("text", "") for part in self.contents[-1]["parts"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _user_turn(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def _parts_text(content: dict[str, Any]) -> str:
    parts = content.get("parts", [])
    if isinstance(parts, dict):  # Google's guide sends a single part as an object
        parts = [parts]
    return "".join(part.get("text", "") for part in parts)


def _from_contents(record: dict[str, Any]) -> SmokePrompt:
    system = record.get("systemInstruction") or record.get("system_instruction")
    contents = [
        {"role": str(turn.get("role", "user")).lower(), "parts": [{"text": _parts_text(turn)}]}
        for turn in record["contents"]
    ]
    expected = None
    if contents and contents[-1]["role"] == "model":
        expected = contents.pop()["parts"][0]["text"]
    if not contents:
        raise ValueError("the example has no turn before its model answer")
    return SmokePrompt(contents, _parts_text(system) if isinstance(system, dict) else system, expected)


def _from_messages(record: dict[str, Any]) -> SmokePrompt:
    system = None
    contents = []
    for message in record["messages"]:
        role, text = message["role"], message["content"]
        if role == "system":
            system = text
        else:
            contents.append({"role": "model" if role in ("model", "assistant") else "user", "parts": [{"text": text}]})
    return _from_contents({"systemInstruction": system, "contents": contents})


def parse_prompt(item: Any) -> SmokePrompt:
    """One prompt from any accepted shape; ValueError saying what is wrong."""
    if isinstance(item, str):
        if not item.strip():
            raise ValueError("empty prompt")
        return SmokePrompt([_user_turn(item)])
    if not isinstance(item, dict):
        raise ValueError(f"expected a string or an object, got {type(item).__name__}")
    if "prompt" in item:
        system = item.get("systemInstruction") or item.get("system_instruction")
        return SmokePrompt([_user_turn(str(item["prompt"]))], system, item.get("expected"))
    if "contents" in item:
        return _from_contents(item)
    if "messages" in item:
        return _from_messages(item)
    raise ValueError(f"expected a 'prompt', 'contents' or 'messages' field, found {sorted(item)}")


def load_prompts_file(
    location: str, storage_conn_id: str = GCS_CONN_ID, impersonation_chain: str | Sequence[str] | None = None
) -> list[SmokePrompt]:
    """Every prompt of a JSONL file (or a ``.txt`` file, one prompt a line); errors name file and line."""
    text = read_text(location, gcp_conn_id=storage_conn_id, impersonation_chain=impersonation_chain)
    prompts = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = line if location.endswith(".txt") else json.loads(line)
            prompts.append(parse_prompt(item))
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
            raise ValueError(f"{location}, line {number}: not a usable prompt: {error}") from None
    return prompts


def load_prompt_list(items: list[Any]) -> list[SmokePrompt]:
    prompts = []
    for index, item in enumerate(items):
        try:
            prompts.append(parse_prompt(item))
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
            raise ValueError(f"prompts[{index}]: not a usable prompt: {error}") from None
    return prompts


def sample(prompts: list[SmokePrompt], count: int, seed: int) -> list[SmokePrompt]:
    """At most ``count`` prompts, a seeded random choice in file order (the same on every retry)."""
    if len(prompts) <= count:
        return prompts
    chosen = sorted(random.Random(seed).sample(range(len(prompts)), count))
    return [prompts[index] for index in chosen]


def load_smoke_prompts(
    *,
    prompts: list[Any] | None = None,
    prompts_file: str | None = None,
    validation_dataset_uri: str | None = None,
    storage_conn_id: str = GCS_CONN_ID,
    impersonation_chain: str | Sequence[str] | None = None,
) -> list[SmokePrompt]:
    """
    The smoke test's prompts from the first source given: a list, a file, or the validation set.

    The pipeline calls this before any job is created, so a prompts file that cannot be read or
    holds no prompt fails the run before it pays for training. ValueError (or DatasetInputError)
    says which source and line.
    """
    storage = {"storage_conn_id": storage_conn_id, "impersonation_chain": impersonation_chain}
    if prompts:
        loaded = load_prompt_list(prompts)
    elif prompts_file:
        loaded = load_prompts_file(prompts_file, **storage)
        if not loaded:
            raise ValueError(f"{prompts_file}: no prompt in the file")
    elif validation_dataset_uri:
        loaded = [p for p in load_prompts_file(validation_dataset_uri, **storage) if p.expected]
        if not loaded:
            raise ValueError(f"{validation_dataset_uri}: no example with a model answer to test against")
    else:
        raise ValueError("No prompts: give prompts, prompts_file or validation_dataset_uri")
    return loaded
