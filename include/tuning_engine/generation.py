"""generateContent with a base model or a tuned adapter, as the local endpoints serve it.

The prompt is rendered by the same code as the training examples (conversation + rendering),
so a tuned model sees exactly what it was tuned on. Base models are loaded once per process;
each adapter is attached to its base once and switched to by name, so a second call is fast.
"""

from __future__ import annotations

import hashlib
import random
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from include.tuning_engine.conversation import chat_messages
from include.tuning_engine.rendering import render_example, render_prompt
from include.tuning_engine.runtime import load_model, load_tokenizer, runtime

MAX_STOP_SEQUENCES = 5  # Vertex's limit
MAX_CANDIDATES = 8


@dataclass(frozen=True)
class GenerationOptions:
    """generationConfig, with Gemini's defaults where a field is unset."""

    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int | None = 40
    max_output_tokens: int = 512
    stop_sequences: tuple[str, ...] = ()
    seed: int | None = None
    candidate_count: int = 1

    @classmethod
    def from_request(cls, request: dict) -> GenerationOptions:
        config = _get(request, "generationConfig", "generation_config") or {}
        if not isinstance(config, dict):
            raise ValueError("generationConfig must be an object")
        defaults = cls()

        def number(camel, snake, kind, low, high, default):
            value = _get(config, camel, snake)
            if value is None:
                return default
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
                raise ValueError(f"generationConfig.{camel} must be {'an integer' if kind is int else 'a number'}, not {value!r}")
            if not low <= value <= high:
                raise ValueError(f"generationConfig.{camel} must be between {low} and {high}, not {value}")
            return kind(value)

        stops = _get(config, "stopSequences", "stop_sequences") or []
        if not isinstance(stops, list) or not all(isinstance(stop, str) and stop for stop in stops):
            raise ValueError("generationConfig.stopSequences must be a list of non-empty strings")
        if len(stops) > MAX_STOP_SEQUENCES:
            raise ValueError(f"generationConfig.stopSequences takes at most {MAX_STOP_SEQUENCES} strings")
        return cls(
            temperature=number("temperature", "temperature", float, 0.0, 2.0, defaults.temperature),
            top_p=number("topP", "top_p", float, 0.0, 1.0, defaults.top_p),
            top_k=number("topK", "top_k", int, 1, 1_000_000, defaults.top_k),
            max_output_tokens=number("maxOutputTokens", "max_output_tokens", int, 1, 1_000_000, defaults.max_output_tokens),
            stop_sequences=tuple(stops),
            seed=number("seed", "seed", int, -(2**63), 2**63 - 1, None),
            candidate_count=number("candidateCount", "candidate_count", int, 1, MAX_CANDIDATES, 1),
        )


class Generator:
    """One per process: holds the loaded base models and their attached adapters."""

    def __init__(self):
        self._lock = threading.Lock()  # one generation at a time: the model is shared
        self._loaded: dict[str, tuple[object, object, set[str]]] = {}  # base -> (model, tokenizer, adapter names)
        self._tokenizers: dict[str, object] = {}  # base -> tokenizer, for token counts without the model

    def generate(self, base_model: str, adapter_dir: Path | None, request: dict,
                 on_text: Callable[[str], None] | None = None) -> dict:
        """The answer; `on_text`, when given, follows the text as it is decoded (see _decode)."""
        if not isinstance(request, dict):
            raise ValueError("the request body must be a JSON object")
        messages = chat_messages(request)
        if messages[-1]["role"] != "user":
            raise ValueError("the last entry of 'contents' must have role 'user'")
        options = GenerationOptions.from_request(request)
        if on_text is not None and options.candidate_count != 1:
            raise ValueError("generationConfig.candidateCount must be 1 when the answer is streamed")
        first_seed = options.seed if options.seed is not None else random.randrange(2**31)

        with self._lock:
            model, tokenizer = self._model(base_model, adapter_dir)
            prompt = render_prompt(tokenizer, messages)
            limit = getattr(model.config, "max_position_embeddings", None)
            if limit and len(prompt) >= limit:
                raise ValueError(f"the prompt has {len(prompt)} tokens; the model takes at most {limit - 1}")
            candidates = [
                _decode(model, tokenizer, prompt, options, first_seed + index, on_text)
                for index in range(options.candidate_count)
            ]

        output_tokens = sum(token_count for _, _, token_count in candidates)
        return {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": reason, "index": index}
                for index, (text, reason, _) in enumerate(candidates)
            ],
            "usageMetadata": {
                "promptTokenCount": len(prompt),
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": len(prompt) + output_tokens,
            },
            "modelVersion": Path(base_model).name + (f"+{Path(adapter_dir).parent.name}" if adapter_dir else ""),
        }

    def count_tokens(self, base_model: str, request: dict) -> int:
        """Tokens of the request's conversation as the model reads it (chat template included)."""
        messages = chat_messages(request)
        tokenizer = self._tokenizer(base_model)
        if messages[-1]["role"] == "assistant":  # a whole example, as a dataset line holds it
            return len(render_example(tokenizer, messages, sys.maxsize).input_ids)
        return len(render_prompt(tokenizer, messages))

    def compute_tokens(self, base_model: str, request: dict) -> list[dict]:
        """Each content's text as token ids and token bytes: [{role, token_ids, tokens}]."""
        messages = chat_messages(request)
        tokenizer = self._tokenizer(base_model)
        roles = {"assistant": "model"}
        infos = []
        for message in messages:
            ids = tokenizer(message["content"], add_special_tokens=False)["input_ids"]
            infos.append({"role": roles.get(message["role"], message["role"]), "token_ids": ids,
                          "tokens": [tokenizer.decode([token]).encode() for token in ids]})
        return infos

    def _tokenizer(self, base_model: str):
        with self._lock:
            if base_model not in self._tokenizers:
                self._tokenizers[base_model] = load_tokenizer(base_model)
            return self._tokenizers[base_model]

    def _model(self, base_model: str, adapter_dir: Path | None):
        """The model with `adapter_dir` active (or all adapters off), and its tokenizer."""
        from peft import PeftModel

        if base_model not in self._loaded:
            self._loaded[base_model] = (load_model(base_model), self._tokenizers.get(base_model)
                                        or load_tokenizer(base_model), set())
        model, tokenizer, adapters = self._loaded[base_model]
        if adapter_dir is None:
            return (_AdaptersOff(model) if adapters else model), tokenizer

        adapter_dir = Path(adapter_dir).resolve()
        if not (adapter_dir / "adapter_config.json").exists():
            raise FileNotFoundError(f"no adapter in {adapter_dir}")
        name = "tuned_" + hashlib.sha1(str(adapter_dir).encode()).hexdigest()[:12]
        if not adapters:
            model = PeftModel.from_pretrained(model, adapter_dir, adapter_name=name).eval()
            self._loaded[base_model] = (model, tokenizer, adapters)
        elif name not in adapters:
            model.load_adapter(adapter_dir, adapter_name=name)
        adapters.add(name)
        model.set_adapter(name)
        return model, tokenizer


class _AdaptersOff:
    """A PeftModel seen as its base model: calls run with every adapter disabled."""

    def __init__(self, peft_model):
        self._model = peft_model
        self.config = peft_model.config

    def __call__(self, **inputs):
        with self._model.disable_adapter():
            return self._model(**inputs)


def _decode(model, tokenizer, prompt: list[int], options: GenerationOptions, seed: int,
            on_text: Callable[[str], None] | None = None) -> tuple[str, str, int]:
    """Sample one answer token by token; returns (text, finishReason, generated token count).

    `on_text`, when given, is called after each token with the text that is final so far: a
    tail that may still become a stop sequence, or half a character, is held back."""
    import torch

    device = runtime().device
    sampler = torch.Generator(device=device).manual_seed(seed)
    end_tokens = {tokenizer.eos_token_id, *_as_list(getattr(model.config, "eos_token_id", None))} - {None}
    generated: list[int] = []
    text = ""
    inputs = torch.tensor([prompt], device=device)
    past = None
    with torch.no_grad(), runtime().autocast():
        for _ in range(options.max_output_tokens):
            output = model(input_ids=inputs, cache=past, use_cache=True, logits_to_keep=1)
            past = output.past_key_values
            token = _next_token(output.logits[0, -1].float(), options, sampler)
            if token in end_tokens:
                return text, "STOP", len(generated)
            generated.append(token)
            text = tokenizer.decode(generated, skip_special_tokens=True)
            cut = min((index for stop in options.stop_sequences if (index := text.find(stop)) >= 0), default=-1)
            if cut >= 0:
                return text[:cut], "STOP", len(generated)
            if on_text is not None:
                on_text(_settled(text, options.stop_sequences))
            inputs = torch.tensor([[token]], device=device)
    return text, "MAX_TOKENS", len(generated)


def _settled(text: str, stops: tuple[str, ...]) -> str:
    """`text` without a tail that could still start a stop sequence or be a partial character."""
    keep = len(text.rstrip("\ufffd"))
    for stop in stops:
        for length in range(min(len(stop) - 1, keep), 0, -1):
            if text[:keep].endswith(stop[:length]):
                keep -= length
                break
    return text[:keep]


def _next_token(logits, options: GenerationOptions, sampler) -> int:
    """Greedy at temperature 0; otherwise top-k, then nucleus (top-p) sampling."""
    import torch

    if options.temperature == 0:
        return int(logits.argmax())
    logits = logits / options.temperature
    if options.top_k is not None and options.top_k < logits.numel():
        threshold = torch.topk(logits, options.top_k).values[-1]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    probabilities = torch.softmax(logits, dim=-1)
    if options.top_p < 1.0:
        ordered, order = torch.sort(probabilities, descending=True)
        outside = ordered.cumsum(dim=-1) - ordered > options.top_p  # keep the smallest set reaching top_p
        probabilities = probabilities.scatter(0, order, ordered.masked_fill(outside, 0.0))
    return int(torch.multinomial(probabilities, 1, generator=sampler))


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _get(mapping: dict, camel: str, snake: str):
    return mapping[camel] if camel in mapping else mapping.get(snake)
