"""The label tensor: the model learns its own turns, end token included, and nothing else."""

from include.tuning_engine.conversation import chat_messages
from include.tuning_engine.rendering import IGNORE_INDEX, render_example, render_prompt
from tests.tuning_engine.helpers import contents_example


def learned_text(tokenizer, example) -> str:
    return tokenizer.decode([token for token, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX])


def test_labels_cover_model_turns_and_their_end_token_only(tiny_tokenizer):
    # The tiny tokenizer, like SmolLM2's, uses <|im_end|> as pad and end token: the end token
    # must stay learnable although it equals the pad id.
    assert tiny_tokenizer.pad_token_id == tiny_tokenizer.eos_token_id
    messages = chat_messages({
        "systemInstruction": {"parts": [{"text": "You sort tickets."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "first question"}]},
            {"role": "model", "parts": [{"text": "first answer"}]},
            {"role": "user", "parts": [{"text": "second question"}]},
            {"role": "model", "parts": [{"text": "second answer"}]},
        ],
    })
    example = render_example(tiny_tokenizer, messages, max_tokens=1000)

    assert learned_text(tiny_tokenizer, example) == "first answer<|im_end|>second answer<|im_end|>"
    assert example.labels[-1] == IGNORE_INDEX  # the newline after the last end token is template, not answer
    ends = [i for i, token in enumerate(example.input_ids) if token == tiny_tokenizer.eos_token_id]
    assert [example.labels[i] != IGNORE_INDEX for i in ends] == [False, False, True, False, True]  # system, user, model, user, model
    assert example.output_token_count + example.input_token_count == len(example.input_ids)
    assert example.message_count == 4


def test_generation_prompt_is_the_training_text_up_to_the_answer(tiny_tokenizer):
    messages = chat_messages(contents_example("What?", "That.", system="Be brief."))
    example = render_example(tiny_tokenizer, messages, max_tokens=1000)
    prompt = render_prompt(tiny_tokenizer, messages[:-1])
    first_label = next(i for i, label in enumerate(example.labels) if label != IGNORE_INDEX)
    assert example.input_ids[:first_label] == prompt


def test_long_examples_lose_their_oldest_context_not_their_answer(tiny_tokenizer):
    messages = chat_messages(contents_example("word " * 200, "answer", system="Be brief."))
    full = render_example(tiny_tokenizer, messages, max_tokens=10_000)
    example = render_example(tiny_tokenizer, messages, max_tokens=32)
    assert example.truncated
    assert len(example.input_ids) == len(example.labels) == 32
    assert example.input_ids == full.input_ids[-32:]
    assert learned_text(tiny_tokenizer, example) == "answer<|im_end|>"
    assert not render_example(tiny_tokenizer, messages, max_tokens=10_000).truncated
