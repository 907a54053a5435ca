"""generateContent with a base model or a tuned adapter, as the local endpoints serve it.

The prompt is rendered by the same code as the training examples (conversation + rendering),
so a tuned model sees exactly what it was tuned on. Base models are loaded once per process;
each adapter is attached to its base once and switched to by name, so a second call is fast.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Hashable

from include.tuning_engine.conversation import chat_messages
from include.tuning_engine.decoding import ModelBatch, Row, new_rows, use_batch_invariant_ops
from include.tuning_engine.rendering import render_example, render_prompt
from include.tuning_engine.runtime import load_model, load_tokenizer, runtime, store_frozen_weights_in_bf16
from include.tuning_engine.threads import ThreadChooser

log = logging.getLogger(__name__)
MAX_STOP_SEQUENCES = 5  # Vertex's limit
MAX_CANDIDATES = 8  # Vertex's limit of candidateCount
# Gemini's default output limit is far beyond what a small local model can use; an unset
# maxOutputTokens means this many tokens, or what is left of the model's context if less.
DEFAULT_MAX_OUTPUT_TOKENS = 512


@dataclass(frozen=True)
class GenerationOptions:
    """generationConfig, with Gemini's defaults where a field is unset."""

    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int | None = 40
    max_output_tokens: int | None = None  # None: DEFAULT_MAX_OUTPUT_TOKENS within the context
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
            max_output_tokens=number("maxOutputTokens", "max_output_tokens", int, 1, 1_000_000, None),
            stop_sequences=tuple(stops),
            seed=number("seed", "seed", int, -(2**63), 2**63 - 1, None),
            candidate_count=number("candidateCount", "candidate_count", int, 1, MAX_CANDIDATES, 1),
        )


class Generator:
    """One per process: holds the loaded base models and their attached adapters, and the
    requests being decoded (continuous batching, see decoding.py).

    `start` queues a request, `step` decodes one token for every row of one model (models
    take turns) and returns the requests it finished; new requests join at any step. On a small
    model a batch of 8 costs little more per token than one request.
    """

    def __init__(self):
        self._lock = threading.Lock()  # one model call at a time: the models are shared
        self._loaded: dict[str, tuple[object, object, set[str]]] = {}  # base -> (model, tokenizer, adapter names)
        self._tokenizers: dict[str, object] = {}  # base -> tokenizer, for token counts without the model
        self._threads: ThreadChooser | None = None  # the thread count of decoding steps, chosen by timing them
        self._batches: dict[tuple[str, str | None], ModelBatch] = {}  # by (base model, adapter folder)
        self._turns: deque[tuple[str, str | None]] = deque()  # the models in the order they step
        self._requests: dict[Hashable, _Request] = {}  # started and not yet answered
        self._calls = itertools.count(1)  # generate_batch's calls, whose requests it names

    def generate(self, base_model: str, adapter_dir: Path | None, request: dict,
                 on_text: Callable[[str], None] | None = None) -> dict:
        """The answer; `on_text`, when given, follows the text as it is decoded (see Row.add)."""
        result = self.generate_batch([(base_model, adapter_dir, request)], on_text={0: on_text} if on_text else None)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def generate_batch(self, items: list[tuple[str, Path | None, dict]],
                       cancelled: Callable[[int], bool] | None = None,
                       on_text: dict[int, Callable[[str], None]] | None = None) -> list[dict | Exception]:
        """The answer to each (base model, adapter folder, request), or the exception that request
        raised (ValueError for a bad request), all decoded together; `cancelled(index)` is polled
        between tokens and ends that request's decoding early; `on_text[index]` follows that
        request's text as it settles (a streamed answer)."""
        on_text = on_text or {}
        call = next(self._calls)
        keys = [f"{call}.{index}" for index in range(len(items))]  # the requests' names in the log
        index_of = {key: index for index, key in enumerate(keys)}
        results: list[dict | Exception | None] = [None] * len(items)
        for index, (key, (base_model, adapter_dir, request)) in enumerate(zip(keys, items)):
            try:
                self.start(key, base_model, adapter_dir, request, on_text.get(index))
            except (OSError, ValueError) as exc:
                results[index] = exc
        while any(key in self._requests for key in keys):
            for key, result in self.step(lambda key: cancelled is not None and cancelled(index_of.get(key, -1))):
                results[index_of[key]] = result
        return results  # type: ignore[return-value]

    def start(self, key: Hashable, base_model: str, adapter_dir: Path | None, request: dict,
              on_text: Callable[[str], None] | None = None) -> None:
        """Queues a request to join the decoding at the next step. A bad request raises
        ValueError now, a missing model or adapter OSError (FileNotFoundError)."""
        with self._lock:
            model, tokenizer = self._model(base_model, adapter_dir)
            prompt, options = _prepared(model, tokenizer, request)
            if on_text is not None and options.candidate_count != 1:
                raise ValueError("generationConfig.candidateCount must be 1 when the answer is streamed")
            which = (base_model, str(adapter_dir) if adapter_dir else None)
            if which not in self._batches:
                self._threads = self._threads or runtime().thread_chooser()
                self._batches[which] = ModelBatch(model, tokenizer, self._threads)
                self._turns.append(which)
            rows = new_rows(key, prompt, options, on_text)
            self._requests[key] = _Request(which, prompt, rows, time.monotonic())
            self._batches[which].join(rows)
            log.info("decoding request %s (%d row%s; %d requests in progress)", key, len(rows),
                     "s" if len(rows) > 1 else "", len(self._requests))

    @property
    def decoding(self) -> bool:
        """Whether a started request is still unanswered."""
        return bool(self._requests)

    def step(self, cancelled: Callable[[Hashable], bool] = lambda key: False) -> list[tuple[Hashable, dict | Exception]]:
        """One step of the next model in turn (a token for each of its rows, and the prompts of
        the requests that join it; see ModelBatch.step); the requests it finished, with their
        answers (or the exception that failed the model's whole batch, such as running out of
        memory)."""
        with self._lock:
            if not self._turns:
                return []
            which = self._turns[0]
            self._turns.rotate(-1)
            batch = self._batches[which]
            try:
                batch.model = self._model(which[0], Path(which[1]) if which[1] else None)[0]  # its adapter active
                batch.step(cancelled)
            except Exception as exc:  # noqa: BLE001 - each request must get an answer
                log.exception("decoding %s failed", Path(which[0]).name)
                del self._batches[which]
                self._turns.remove(which)
                failed = [key for key, request in self._requests.items() if request.model == which]
                for key in failed:
                    del self._requests[key]
                return [(key, exc) for key in failed]
            if not batch:
                del self._batches[which]
                self._turns.remove(which)
            done = [key for key, request in self._requests.items()
                    if request.model == which and all(row.finish_reason for row in request.rows)]
            answered = []
            for key in done:
                request = self._requests.pop(key)
                answered.append((key, request.response()))
                log.info("decoded request %s (%d rows, %d tokens) in %.2f s, in a batch of up to %d rows", key,
                         len(request.rows), sum(len(row.generated) for row in request.rows),
                         time.monotonic() - request.started, max(row.most_rows for row in request.rows))
            return answered

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
            started = time.monotonic()
            model = load_model(base_model).requires_grad_(False)
            use_batch_invariant_ops(model)
            if runtime().bf16:  # then decoding casts no weight at each token
                store_frozen_weights_in_bf16(model)
            self._loaded[base_model] = (model, self._tokenizers.get(base_model) or load_tokenizer(base_model), set())
            log.info("loaded the base model %s in %.1f s", Path(base_model).name, time.monotonic() - started)
        model, tokenizer, adapters = self._loaded[base_model]
        if adapter_dir is None:
            return (_AdaptersOff(model) if adapters else model), tokenizer

        adapter_dir = Path(adapter_dir).resolve()
        if not (adapter_dir / "adapter_config.json").exists():
            raise FileNotFoundError(f"no adapter in {adapter_dir}")
        name = "tuned_" + hashlib.sha1(str(adapter_dir).encode()).hexdigest()[:12]
        started = time.monotonic()
        if not adapters:
            model = PeftModel.from_pretrained(model, adapter_dir, adapter_name=name).eval()
            self._loaded[base_model] = (model, tokenizer, adapters)
        elif name not in adapters:
            model.load_adapter(adapter_dir, adapter_name=name)
        if name not in adapters:
            use_batch_invariant_ops(model)  # the adapter's own products (LoRA's A and B) too
            log.info("loaded the adapter %s in %.1f s", adapter_dir.parent.name, time.monotonic() - started)
        adapters.add(name)
        model.set_adapter(name)
        return model, tokenizer


def _prepared(model, tokenizer, request: dict) -> tuple[list[int], GenerationOptions]:
    """The prompt's token ids and the options, with the output limit checked against the context."""
    if not isinstance(request, dict):
        raise ValueError("the request body must be a JSON object")
    messages = chat_messages(request)
    if messages[-1]["role"] != "user":
        raise ValueError("the last entry of 'contents' must have role 'user'")
    options = GenerationOptions.from_request(request)
    prompt = render_prompt(tokenizer, messages)
    context = getattr(model.config, "max_position_embeddings", None) or len(prompt) + DEFAULT_MAX_OUTPUT_TOKENS
    if len(prompt) >= context:
        raise ValueError(f"the prompt has {len(prompt)} tokens; the model takes at most {context - 1}")
    room = context - len(prompt)
    if options.max_output_tokens is None:
        return prompt, replace(options, max_output_tokens=min(DEFAULT_MAX_OUTPUT_TOKENS, room))
    if options.max_output_tokens > room:
        raise ValueError(f"generationConfig.maxOutputTokens is {options.max_output_tokens}, but the prompt's "
                         f"{len(prompt)} tokens leave {room} of the model's {context}-token context")
    return prompt, options


@dataclass
class _Request:
    """A request being decoded: its model, prompt and candidates' rows."""

    model: tuple[str, str | None]  # (base model, adapter folder)
    prompt: list[int]
    rows: list[Row]
    started: float  # time.monotonic()

    def response(self) -> dict:
        base_model, adapter_dir = self.model
        output_tokens = sum(len(row.generated) for row in self.rows)
        return {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": row.text}]}, "finishReason": row.finish_reason,
                 "index": index}
                for index, row in enumerate(self.rows)
            ],
            "usageMetadata": {
                "promptTokenCount": len(self.prompt),
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": len(self.prompt) + output_tokens,
            },
            "modelVersion": Path(base_model).name + (f"+{Path(adapter_dir).parent.name}" if adapter_dir else ""),
        }


class _AdaptersOff:
    """A PeftModel seen as its base model: calls run with every adapter disabled."""

    def __init__(self, peft_model):
        self._model = peft_model
        self.config = peft_model.config

    def __call__(self, **inputs):
        with self._model.disable_adapter():
            return self._model(**inputs)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _get(mapping: dict, camel: str, snake: str):
    return mapping[camel] if camel in mapping else mapping.get(snake)
