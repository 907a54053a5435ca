"""Continuous batching that no neighbour can change.

The rows of every request being decoded for a model share one forward pass per token, and new
requests join the rows at a token boundary instead of waiting for them to finish. (A batch made
of only the requests already waiting, run to its end, decoded 1, 7, 1, 7 at a time: when it
ends, its clients' next requests arrive a little apart.)

A row's numbers are exactly those it would have alone, so an answer at temperature 0 does not
depend on what else was asked at the time. Three things make it so (each found to tip answers
on this stack when missing, in bf16 first: it rounds every product to 8 bits of mantissa):
- a lone row is multiplied as two (`use_batch_invariant_ops`): one row goes to another kernel
  than two rows or more, which sums in another order, while from two rows on a row gets the
  same bits however many rows are multiplied with it (checked for every layer of SmolLM2 from 2
  to 224 rows); norms and activations work row by row anyway;
- each row attends to its own keys and values in the call it would have alone (`row_attention`):
  SDPA's result for a query depends on how many keys it is given, masked padding included;
- a request's prompt is read as alone: no padding, and no start shared with other requests (a
  shared start read on its own gives its tokens' keys from fewer keys than alone). A request's
  candidates share its prompt's pass, as they do alone.
In fp32, MKL sums a row differently once 4 rows or more are multiplied together, but only in
fp32's last bits; no tie near enough to tip has been seen there.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from types import MethodType
from typing import Callable, Hashable

from include.tuning_engine.runtime import runtime
from include.tuning_engine.threads import ThreadChooser

# The attention implementation of the generator's models (see row_attention).
ROW_ATTENTION = "local_vertex_rows"
# Rows decoded together; requests beyond them wait for rows to finish. A decoding step reads
# every weight whatever the rows, so on a CPU a 32-row step costs about 1.25x a 16-row one (100
# SmolLM2 prompts, 16 tokens each: 18 s of CPU in batches of 16, 14 s in 32, 29 s in 8).
MAX_ROWS = 32
# When requests join. Reading prompts is a pass of its own that reads every weight, as a
# decoding step does, whether for one prompt or several; so while rows decode, arriving requests
# wait for company: they join once there are WAITING_SERVED_RATIO of them per row decoding, or
# after MAX_WAITING_STEPS tokens (and at once when nothing decodes). Text Generation Inference
# schedules its prefills the same way (its waiting_served_ratio and max_waiting_tokens).
WAITING_SERVED_RATIO = 0.5
MAX_WAITING_STEPS = 4


def use_batch_invariant_ops(model) -> None:
    """Makes `model`'s products and attention give each row the bits it would have alone; again
    after an adapter is attached, for the products it adds."""
    import torch
    from transformers import AttentionInterface

    layer_types = set(getattr(model.config, "layer_types", None) or ["full_attention"])
    if layer_types != {"full_attention"}:
        raise ValueError(f"the local generator serves models with full attention in every layer, not "
                         f"{sorted(layer_types)}")
    AttentionInterface.register(ROW_ATTENTION, row_attention)
    model.set_attn_implementation(ROW_ATTENTION)
    for module in model.modules():
        if type(module) is torch.nn.Linear and "forward" not in vars(module):
            module.forward = MethodType(_batch_invariant_linear, module)


def _batch_invariant_linear(self, inputs):
    """nn.Linear's forward, with a lone row multiplied as two (the cost: about a fifth more for
    that product; a single request's decoding measured no slower overall)."""
    import torch

    rows = inputs.reshape(-1, inputs.shape[-1])
    output = torch.mm(rows.expand(2, -1), self.weight.t())[:1] if len(rows) == 1 else torch.mm(rows, self.weight.t())
    if self.bias is not None:
        output = output + self.bias
    return output.reshape(*inputs.shape[:-1], output.shape[-1])


def row_attention(module, query, key, value, attention_mask, scaling=None, row_starts=None, **kwargs):
    """SDPA attention, each row on its own queries, keys and values, as it would be alone.

    `row_starts[b]` is where row b's tokens begin in the batch's left-padded cache (0 without
    padding, as alone). Rows that start at the same place have as many keys, and go in one call
    (SDPA gives each row of a call the bits it gives that row alone). Transformers makes no mask
    for an attention it does not know, and none is needed: a row's prompt is read causally, and
    a decoded token sees every key of its row."""
    import torch

    grouped = query.shape[1] != key.shape[1]  # grouped-query attention: fewer key heads
    starts = row_starts or [0] * query.shape[0]
    queries, keys = query.shape[2], key.shape[2]
    outputs = [None] * len(starts)  # each row's, in the batch's order
    for start in sorted(set(starts)):
        rows = [row for row, row_start in enumerate(starts) if row_start == start]
        own = min(queries, keys - start)  # the rows' queries: the last ones (padding comes first)
        if rows == list(range(rows[0], rows[-1] + 1)):  # consecutive (often just one): a view
            index = slice(rows[0], rows[-1] + 1)
        else:
            index = torch.tensor(rows, device=query.device)
        attended = torch.nn.functional.scaled_dot_product_attention(
            query[index, :, queries - own:], key[index, :, start:], value[index, :, start:], scale=scaling,
            is_causal=own > 1, enable_gqa=grouped)
        if own < queries:  # padding's outputs are never read: zeros
            attended = torch.cat([attended.new_zeros(attended.shape[:2] + (queries - own,) + attended.shape[3:]),
                                  attended], dim=2)
        for i, row in enumerate(rows):
            outputs[row] = attended[i:i + 1]
    output = torch.cat(outputs)
    return output.transpose(1, 2).contiguous(), None


@dataclass
class Row:
    """One candidate being decoded."""

    request: Hashable  # the key of the request it answers
    prompt: list[int]
    options: object  # GenerationOptions
    seed: int
    on_text: Callable[[str], None] | None = None
    generated: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    sampler: object = None  # torch.Generator, seeded with `seed`
    most_rows: int = 0  # the largest batch it was decoded in (for the logs)

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
            self.on_text(settled(self.text, self.options.stop_sequences))


class ModelBatch:
    """The rows being decoded for one model (a base model, or a base with one adapter active).

    `join` queues a request's rows; `step` decodes one token for every row that was already
    there, reads the prompts of the requests whose time to join has come (_time_to_join), then
    lets finished rows go."""

    def __init__(self, model, tokenizer, threads: ThreadChooser | None):
        self.model, self.tokenizer, self.threads = model, tokenizer, threads
        self.end_tokens = {tokenizer.eos_token_id, *_as_list(getattr(model.config, "eos_token_id", None))} - {None}
        self.rows: list[Row] = []  # decoding, in the cache's batch order
        self.starts: list[int] = []  # where each row's tokens begin in the cache (after its padding)
        self.cache = None
        self.joining: deque[list[Row]] = deque()  # each entry: the rows of one request
        self.waited = 0  # steps the oldest joining request has waited

    def join(self, rows: list[Row]) -> None:
        import torch

        for row in rows:
            row.sampler = torch.Generator(device=runtime().device).manual_seed(row.seed)
        self.joining.append(rows)

    def __bool__(self) -> bool:
        return bool(self.rows or self.joining)

    def step(self, cancelled: Callable[[Hashable], bool]) -> None:
        import torch

        with torch.inference_mode(), runtime().autocast():
            if self.rows:
                self._decode_one_token(cancelled)
            joined: list[list[Row]] = []
            if self._time_to_join():
                while self.joining and len(self.rows) + sum(map(len, joined)) + len(self.joining[0]) <= MAX_ROWS:
                    joined.append(self.joining.popleft())
            if joined:
                self._read_prompts(joined, cancelled)
            self.waited = self.waited + 1 if self.joining else 0
        for row in self.rows:
            row.most_rows = max(row.most_rows, len(self.rows))
        self._drop_finished()

    def _time_to_join(self) -> bool:
        waiting = sum(len(rows) for rows in self.joining)
        return (not self.rows or waiting >= WAITING_SERVED_RATIO * len(self.rows)
                or self.waited >= MAX_WAITING_STEPS)

    def _decode_one_token(self, cancelled) -> None:
        import torch

        device = runtime().device
        inputs = torch.tensor([[row.generated[-1]] for row in self.rows], device=device)
        positions = torch.tensor([[len(row.prompt) + len(row.generated) - 1] for row in self.rows], device=device)
        if self.threads is not None:  # a step reads every weight whatever the rows: its time is the measure
            self.threads.next_count()
            tick = time.monotonic()
        output = self.model(input_ids=inputs, position_ids=positions, cache=self.cache, use_cache=True,
                            logits_to_keep=1, row_starts=self.starts)
        if self.threads is not None:
            self.threads.record(time.monotonic() - tick, 1)
        self.cache = output.cache
        self._take(self.rows, output.logits[:, -1].float(), cancelled)

    def _read_prompts(self, requests: list[list[Row]], cancelled) -> None:
        """The prompts of the joining requests in one pass (one row each, left-padded); each
        candidate takes its first token from its request's row, then all join the batch."""
        import torch

        device = runtime().device
        if self.threads is not None:
            self.threads.use_best()
        prompts = [rows[0].prompt for rows in requests]
        width = max(map(len, prompts))
        starts = [width - len(prompt) for prompt in prompts]
        inputs = torch.full((len(prompts), width), self.tokenizer.pad_token_id, dtype=torch.long)
        positions = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, (prompt, start) in enumerate(zip(prompts, starts)):
            inputs[i, start:] = torch.tensor(prompt)
            positions[i, start:] = torch.arange(len(prompt))
        output = self.model(input_ids=inputs.to(device), position_ids=positions.to(device), use_cache=True,
                            logits_to_keep=1, row_starts=starts)
        logits = output.logits[:, -1].float()
        of_request = [index for index, rows in enumerate(requests) for _ in rows]
        rows = [row for rows in requests for row in rows]
        self._take(rows, logits[of_request], cancelled)
        cache = output.cache
        if len(rows) > len(requests):  # candidates: copies of their request's keys and values
            cache.batch_select_indices(torch.tensor(of_request, device=device))
        self._merge(rows, cache, [starts[index] for index in of_request], width)

    def _take(self, rows: list[Row], logits, cancelled) -> None:
        for row, row_logits in zip(rows, logits):
            if cancelled(row.request):
                row.finish_reason = "CANCELLED"
            else:
                row.add(next_token(row_logits, row.options, row.sampler), self.tokenizer, self.end_tokens)

    def _merge(self, rows: list[Row], cache, starts: list[int], length: int) -> None:
        """Adds rows and their cache to the batch's, left-padding whichever is shorter."""
        import torch

        if not self.rows:
            self.rows, self.cache, self.starts = list(rows), cache, starts
            return
        ours = self.cache.get_seq_length()
        width = max(ours, length)

        def padded(tensor, tokens):
            if tokens == width:
                return tensor
            shape = list(tensor.shape)
            shape[2] = width - tokens
            return torch.cat([tensor.new_zeros(shape), tensor], dim=2)

        for mine, new in zip(self.cache.layers, cache.layers):
            mine.keys = torch.cat([padded(mine.keys, ours), padded(new.keys, length)])
            mine.values = torch.cat([padded(mine.values, ours), padded(new.values, length)])
        self.starts = ([start + width - ours for start in self.starts]
                       + [start + width - length for start in starts])
        self.rows += rows

    def _drop_finished(self) -> None:
        """Finished rows leave the batch and its cache, so a long answer does not keep the
        short ones computing; padding that no row needs any more goes with them."""
        import torch

        keep = [index for index, row in enumerate(self.rows) if row.finish_reason is None]
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[index] for index in keep]
        self.starts = [self.starts[index] for index in keep]
        if not keep:
            self.cache = None
            return
        self.cache.batch_select_indices(torch.tensor(keep, device=runtime().device))
        unused = min(self.starts)
        if unused:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, unused:], layer.values[:, :, unused:]
            self.starts = [start - unused for start in self.starts]


def new_rows(request: Hashable, prompt: list[int], options, on_text=None) -> list[Row]:
    """A request's candidates: seeds follow on from its seed (or a random one)."""
    first_seed = options.seed if options.seed is not None else random.randrange(2**31)
    return [Row(request, prompt, options, first_seed + candidate, on_text) for candidate in range(options.candidate_count)]


def settled(text: str, stops: tuple[str, ...]) -> str:
    """`text` without a tail that could still start a stop sequence or be a partial character."""
    keep = len(text.rstrip("\ufffd"))
    for stop in stops:
        for length in range(min(len(stop) - 1, keep), 0, -1):
            if text[:keep].endswith(stop[:length]):
                keep -= length
                break
    return text[:keep]


def next_token(logits, options, sampler) -> int:
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
