"""generateContent with a base model or a tuned adapter, as the local endpoints serve it.

The prompt is rendered by the same code as the training examples (conversation + rendering),
so a tuned model sees exactly what it was tuned on. Base models are loaded once per process;
each adapter is attached to its base once and switched to by name, so a second call is fast.
"""

from __future__ import annotations

import hashlib
import logging
import random
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from include.tuning_engine.conversation import chat_messages
from include.tuning_engine.rendering import render_example, render_prompt
from include.tuning_engine.runtime import load_model, load_tokenizer, runtime, store_frozen_weights_in_bf16
from include.tuning_engine.threads import ThreadChooser

log = logging.getLogger(__name__)
MAX_STOP_SEQUENCES = 5  # Vertex's limit
MAX_CANDIDATES = 8  # Vertex's limit of candidateCount
# Gemini's default output limit is far beyond what a small local model can use; an unset
# maxOutputTokens means this many tokens, or what is left of the model's context if less.
DEFAULT_MAX_OUTPUT_TOKENS = 512
# A batch's common prompt start (a system instruction) runs once when that saves at least this
# many tokens of prefill: below it, the separate pass costs about what it saves.
MIN_SHARED_PREFIX_SAVING = 32


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
    """One per process: holds the loaded base models and their attached adapters.

    `generate_batch` answers several requests for the same model with one forward pass per token
    for all of them (prompts left-padded, each row with its own options, seed and stop), which is
    what makes concurrent requests cheap: on a small model a batch of 8 costs little more per
    token than one request.
    """

    def __init__(self):
        self._lock = threading.Lock()  # one generation at a time: the model is shared
        self._loaded: dict[str, tuple[object, object, set[str]]] = {}  # base -> (model, tokenizer, adapter names)
        self._tokenizers: dict[str, object] = {}  # base -> tokenizer, for token counts without the model
        self._threads: ThreadChooser | None = None  # the thread count of decoding steps, chosen by timing them

    def generate(self, base_model: str, adapter_dir: Path | None, request: dict,
                 on_text: Callable[[str], None] | None = None) -> dict:
        """The answer; `on_text`, when given, follows the text as it is decoded (see _Row.add)."""
        result = self.generate_batch([(base_model, adapter_dir, request)], on_text={0: on_text} if on_text else None)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def generate_batch(self, items: list[tuple[str, Path | None, dict]],
                       cancelled: Callable[[int], bool] | None = None,
                       on_text: dict[int, Callable[[str], None]] | None = None) -> list[dict | Exception]:
        """The answer to each (base model, adapter folder, request), or the exception that request
        raised (ValueError for a bad request). Requests for the same model are decoded together;
        `cancelled(index)` is polled between tokens and ends that request's decoding early;
        `on_text[index]` follows that request's text as it settles (a streamed answer)."""
        on_text = on_text or {}
        results: list[dict | Exception | None] = [None] * len(items)
        by_model: dict[tuple[str, str | None], list[int]] = {}
        for index, (base_model, adapter_dir, _) in enumerate(items):
            by_model.setdefault((base_model, str(adapter_dir) if adapter_dir else None), []).append(index)
        with self._lock:
            for (base_model, adapter_dir), indices in by_model.items():
                try:
                    model, tokenizer = self._model(base_model, Path(adapter_dir) if adapter_dir else None)
                except (OSError, ValueError) as exc:
                    for index in indices:
                        results[index] = exc
                    continue
                rows: list[_Row] = []
                prompts: dict[int, list[int]] = {}
                for index in indices:
                    try:
                        prompt, options = _prepared(model, tokenizer, items[index][2])
                        if index in on_text and options.candidate_count != 1:
                            raise ValueError("generationConfig.candidateCount must be 1 when the answer is streamed")
                    except ValueError as exc:
                        results[index] = exc
                        continue
                    prompts[index] = prompt
                    first_seed = options.seed if options.seed is not None else random.randrange(2**31)
                    rows += [_Row(index, prompt, options, first_seed + candidate, on_text.get(index))
                             for candidate in range(options.candidate_count)]
                if rows:
                    self._threads = self._threads or runtime().thread_chooser()
                    _decode(model, tokenizer, rows, cancelled, self._threads)
                for index, prompt in prompts.items():
                    results[index] = _response(prompt, [row for row in rows if row.item == index],
                                               base_model, adapter_dir)
        return results  # type: ignore[return-value]

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
class _Row:
    """One candidate being decoded."""

    item: int  # which request of the batch
    prompt: list[int]
    options: GenerationOptions
    seed: int
    on_text: Callable[[str], None] | None = None
    generated: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None

    def add(self, token: int, tokenizer, end_tokens: set[int]) -> None:
        """Takes the next token. `on_text`, when set, is called with the text that is final so
        far: a tail that may still become a stop sequence, or half a character, is held back."""
        if token in end_tokens:
            self.finish_reason = "STOP"
            return
        self.generated.append(token)
        self.text = tokenizer.decode(self.generated, skip_special_tokens=True)
        cut = min((index for stop in self.options.stop_sequences if (index := self.text.find(stop)) >= 0), default=-1)
        if cut >= 0:
            self.text, self.finish_reason = self.text[:cut], "STOP"
            return
        if len(self.generated) >= self.options.max_output_tokens:
            self.finish_reason = "MAX_TOKENS"
        if self.on_text is not None:
            self.on_text(_settled(self.text, self.options.stop_sequences))


def _response(prompt: list[int], rows: list[_Row], base_model: str, adapter_dir: str | None) -> dict:
    output_tokens = sum(len(row.generated) for row in rows)
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": row.text}]}, "finishReason": row.finish_reason, "index": index}
            for index, row in enumerate(rows)
        ],
        "usageMetadata": {
            "promptTokenCount": len(prompt),
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": len(prompt) + output_tokens,
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


def _decode(model, tokenizer, rows: list[_Row], cancelled: Callable[[int], bool] | None,
            threads: ThreadChooser | None = None) -> None:
    """Sample every row token by token, all rows in one forward pass per token, until each has
    finished (end token, stop sequence, its own maxOutputTokens, or its request cancelled). A row
    that has finished leaves the batch (and its cache), so a long answer does not keep the short
    ones computing.

    The tokens that every prompt starts with (a shared system instruction, or all but the last
    token of a request's candidates) run once, and the rows continue from copies of their keys
    and values. Causal attention makes this exact: those tokens never see what follows them.

    With `threads`, each decoding step runs at the thread count that timing shows fastest (a
    step reads every weight whatever the rows, so its time per step is the measure); the prompts'
    pass runs at the fastest so far."""
    import torch

    device = runtime().device
    end_tokens = {tokenizer.eos_token_id, *_as_list(getattr(model.config, "eos_token_id", None))} - {None}
    samplers = [torch.Generator(device=device).manual_seed(row.seed) for row in rows]
    shared = _shared_prefix_length([row.prompt for row in rows])
    if (len(rows) - 1) * shared < MIN_SHARED_PREFIX_SAVING:
        shared = 0
    width = max(len(row.prompt) for row in rows) - shared
    inputs = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), shared + width), dtype=torch.long)
    mask[:, :shared] = 1
    for i, row in enumerate(rows):  # left-padded after the shared part: every row's next token is at the end
        own = row.prompt[shared:]
        inputs[i, width - len(own):] = torch.tensor(own)
        mask[i, shared + width - len(own):] = 1
    positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)[:, shared:]
    inputs, mask, positions = inputs.to(device), mask.to(device), positions.to(device)
    live = list(range(len(rows)))  # the rows still decoding, in the batch's order
    past = None
    with torch.inference_mode(), runtime().autocast():
        if threads is not None:
            threads.use_best()
        if shared:
            prefix = torch.tensor([rows[0].prompt[:shared]], device=device)
            no_logits = torch.zeros(0, dtype=torch.long, device=device)
            past = model(input_ids=prefix, use_cache=True, logits_to_keep=no_logits).cache
            past.batch_repeat_interleave(len(rows))
        prompts_pass = True
        while True:
            timed = threads is not None and not prompts_pass
            if timed:
                threads.next_count()
                tick = time.monotonic()
            output = model(input_ids=inputs, attention_mask=mask, position_ids=positions, cache=past,
                           use_cache=True, logits_to_keep=1)
            past = output.cache
            logits = output.logits[:, -1].float()
            if timed:
                threads.record(time.monotonic() - tick, 1)
            prompts_pass = False
            for position, i in enumerate(live):
                row = rows[i]
                if cancelled is not None and cancelled(row.item):
                    row.finish_reason = "CANCELLED"
                else:
                    row.add(_next_token(logits[position], row.options, samplers[i]), tokenizer, end_tokens)
            going = [position for position, i in enumerate(live) if rows[i].finish_reason is None]
            if not going:
                return
            if len(going) < len(live):  # finished rows leave the batch, and cost nothing more
                keep = torch.tensor(going, device=device)
                past.batch_select_indices(keep)
                mask, positions = mask[keep], positions[keep]
                live = [live[position] for position in going]
            inputs = torch.tensor([rows[i].generated[-1] for i in live], device=device)[:, None]
            mask = torch.cat([mask, torch.ones((len(live), 1), dtype=mask.dtype, device=device)], dim=1)
            positions = positions[:, -1:] + 1


def _shared_prefix_length(prompts: list[list[int]]) -> int:
    """How many leading tokens all prompts share, leaving each at least one token of its own."""
    shortest = min(len(prompt) for prompt in prompts)
    length = 0
    while length < shortest - 1 and all(prompt[length] == prompts[0][length] for prompt in prompts):
        length += 1
    return length


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
