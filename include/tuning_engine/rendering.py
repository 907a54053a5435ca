"""Chat messages -> token ids with the model's own chat template, for tuning and for answering.

Training labels are found by character spans: the text a model turn adds after the generation
prompt (its content and the end-of-turn token) is what the model must learn to produce.
Labels are never derived from the pad id: SmolLM2's pad token *is* its end-of-turn token, and
masking by pad id would teach the model never to stop.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100  # the label value cross-entropy skips


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # the token id where the model learns, IGNORE_INDEX elsewhere
    truncated: bool
    message_count: int  # user and model turns, without the system instruction
    character_count: int

    @property
    def output_token_count(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)

    @property
    def input_token_count(self) -> int:
        return len(self.input_ids) - self.output_token_count


def render_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of a conversation followed by the prompt for the model's next turn."""
    text = _template(tokenizer, messages, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def render_example(tokenizer, messages: list[dict], max_tokens: int) -> TokenizedExample:
    """Token ids and labels of a training conversation, trimmed to its last `max_tokens` if longer.

    A long example loses its oldest context, never its final answer: the model turns are the
    only labelled tokens, and an example cut from the right would cost a full step to teach
    nothing. It is still flagged, and Vertex's truncatedExampleIndices reports it.
    """
    if not any(message["role"] == "assistant" for message in messages):
        raise ValueError("the example has no 'model' turn to learn from")
    text = _template(tokenizer, messages, add_generation_prompt=False)
    spans = _model_turn_spans(tokenizer, messages, text)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = encoded["input_ids"]
    labels = [
        token if any(start <= token_start < end for start, end in spans) else IGNORE_INDEX
        for token, (token_start, _) in zip(input_ids, encoded["offset_mapping"])
    ]
    truncated = len(input_ids) > max_tokens
    return TokenizedExample(
        input_ids=input_ids[-max_tokens:],
        labels=labels[-max_tokens:],
        truncated=truncated,
        message_count=sum(message["role"] != "system" for message in messages),
        character_count=sum(len(message["content"]) for message in messages),
    )


def _model_turn_spans(tokenizer, messages: list[dict], text: str) -> list[tuple[int, int]]:
    """Character spans of `text` that the model turns produce, end-of-turn token included."""
    end_token = tokenizer.eos_token or ""
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _template(tokenizer, messages[:i], add_generation_prompt=True)
        through_turn = _template(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not (through_turn.startswith(prompt) and text.startswith(through_turn)):
            raise ValueError(
                "the model's chat template does not render conversations as growing prefixes; "
                "cannot tell the model turns apart"
            )
        end = through_turn.rfind(end_token) + len(end_token) if end_token else -1
        if end <= len(prompt):  # no end token after the turn's content: stop at its text
            end = len(through_turn.rstrip())
        spans.append((len(prompt), end))
    return spans


def _template(tokenizer, messages: list[dict], *, add_generation_prompt: bool) -> str:
    if not tokenizer.chat_template:
        raise ValueError("the base model's tokenizer has no chat template")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
