"""generateContent on the (untuned) tiny model: options, finish reasons, usage counts."""

import pytest

from include.tuning_engine.generation import Generator
from include.tuning_engine.rendering import render_prompt
from include.tuning_engine.conversation import chat_messages


@pytest.fixture(scope="module")
def generator():
    return Generator()


def ask(text: str = "hello", **config) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], "generationConfig": config}


def answer(response: dict) -> str:
    return response["candidates"][0]["content"]["parts"][0]["text"]


def test_greedy_is_deterministic_and_counts_real_tokens(generator, tiny_model, tiny_tokenizer):
    first = generator.generate(tiny_model, None, ask(temperature=0, maxOutputTokens=12))
    second = generator.generate(tiny_model, None, ask(temperature=0, maxOutputTokens=12))
    assert answer(first) == answer(second)
    usage = first["usageMetadata"]
    prompt = render_prompt(tiny_tokenizer, chat_messages(ask()))
    assert usage["promptTokenCount"] == len(prompt)
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert 1 <= usage["candidatesTokenCount"] <= 12


def test_max_output_tokens_ends_with_max_tokens(generator, tiny_model):
    # An untuned random model practically never emits its end token within 5 steps.
    response = generator.generate(tiny_model, None, ask(temperature=0, maxOutputTokens=5))
    assert response["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert response["usageMetadata"]["candidatesTokenCount"] == 5


def test_stop_sequence_cuts_the_answer_and_reports_stop(generator, tiny_model):
    full = answer(generator.generate(tiny_model, None, ask(temperature=0, maxOutputTokens=8)))
    stop = full[3:5]
    response = generator.generate(tiny_model, None, ask(temperature=0, maxOutputTokens=8, stopSequences=[stop]))
    assert answer(response) == full[: full.find(stop)]
    assert response["candidates"][0]["finishReason"] == "STOP"


def test_sampling_follows_the_seed(generator, tiny_model):
    def sample(seed):
        request = ask(temperature=1.0, topP=0.9, topK=50, maxOutputTokens=10, seed=seed)
        return answer(generator.generate(tiny_model, None, request))

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in range(4)}) > 1


def test_multi_turn_system_instruction_and_candidates(generator, tiny_model):
    request = {
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "hello"}]},
            {"role": "user", "parts": [{"text": "again"}]},
        ],
        "generation_config": {"candidate_count": 2, "max_output_tokens": 3, "seed": 1},
    }
    response = generator.generate(tiny_model, None, request)
    assert [candidate["index"] for candidate in response["candidates"]] == [0, 1]
    assert all(candidate["content"]["role"] == "model" for candidate in response["candidates"])


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"contents": []}, "contents"),
        (ask(temperature=3), "temperature must be between 0.0 and 2.0"),
        (ask(topK=1.5), "topK must be an integer"),
        (ask(maxOutputTokens=0), "maxOutputTokens"),
        (ask(stopSequences="END"), "stopSequences"),
        ({"contents": [{"role": "user", "parts": [{"text": "q"}]}, {"role": "model", "parts": [{"text": "a"}]}]}, "role 'user'"),
    ],
)
def test_bad_requests_raise_value_error(generator, tiny_model, request_body, message):
    with pytest.raises(ValueError, match=message):
        generator.generate(tiny_model, None, request_body)


def test_a_batch_answers_exactly_as_one_request_at_a_time(generator, tiny_model):
    requests = [ask(text, temperature=0, maxOutputTokens=length)
                for text, length in [("hello", 6), ("a much longer question than the others", 9), ("yes", 3),
                                     ("ping", 12)]]
    requests.append(ask("sampled", temperature=1.0, seed=5, maxOutputTokens=7, candidateCount=2))
    alone = [generator.generate(tiny_model, None, request) for request in requests]
    together = generator.generate_batch([(tiny_model, None, request) for request in requests])
    assert together == alone


class RecordedCalls:
    """A model that records the shape of the tokens of each forward pass."""

    def __init__(self, model):
        self.model, self.config, self.shapes = model, model.config, []

    def __call__(self, **inputs):
        self.shapes.append(tuple(inputs["input_ids"].shape))
        return self.model(**inputs)


@pytest.mark.parametrize("system", ["Route the ticket: billing, shipping, technical, account or returns.", None])
def test_a_shared_prompt_start_runs_once_and_changes_no_answer_in_fp32(tiny_model, tiny_tokenizer, monkeypatch, system):
    from include.tuning_engine import generation
    from include.tuning_engine.runtime import Runtime

    monkeypatch.setattr(generation, "runtime", lambda: Runtime("cpu", 1, bf16=False))
    generator = Generator()

    def asked(text, **config):
        return {**ask(text, **config), **({"systemInstruction": {"parts": [{"text": system}]}} if system else {})}

    requests = [asked(text, temperature=0, maxOutputTokens=length)
                for text, length in [("my card was charged twice", 6), ("parcel late", 9), ("?", 3),
                                     ("the app crashes whenever I open the settings page", 12)]]
    requests.append(asked("refund", temperature=1.0, seed=5, maxOutputTokens=7, candidateCount=2))
    stop = answer(generator.generate(tiny_model, None, requests[3]))[2:4]
    requests.append(asked("the app crashes whenever I open the settings page", temperature=0, maxOutputTokens=12,
                          stopSequences=[stop]))
    alone = [generator.generate(tiny_model, None, request) for request in requests]
    assert alone[-1]["candidates"][0]["finishReason"] == "STOP"

    model, _ = generator._model(tiny_model, None)
    recorded = RecordedCalls(model)
    monkeypatch.setattr(generator, "_model", lambda base, adapter: (recorded, tiny_tokenizer))
    together = generator.generate_batch([(tiny_model, None, request) for request in requests])
    assert together == alone
    prompts = [render_prompt(tiny_tokenizer, chat_messages(request)) for request in requests]
    rows = len(prompts) + 1  # the sampled request's two candidates are two rows
    shared = generation._shared_prefix_length(prompts)
    if system:  # the system instruction ran once, then each row its own tokens
        assert (rows - 1) * shared >= generation.MIN_SHARED_PREFIX_SAVING
        assert recorded.shapes[:2] == [(1, shared), (rows, max(map(len, prompts)) - shared)]
    else:  # too little in common to pay for a separate pass
        assert recorded.shapes[0] == (rows, max(map(len, prompts)))


def test_finished_rows_leave_the_batch(tiny_model, tiny_tokenizer):
    from include.tuning_engine.generation import _decode, _prepared, _Row
    from include.tuning_engine.runtime import load_model

    model = load_model(tiny_model)
    batch_sizes = []

    class Recording:
        config = model.config

        def __call__(self, **inputs):
            batch_sizes.append(len(inputs["input_ids"]))
            return model(**inputs)

    rows = [_Row(0, *_prepared(model, tiny_tokenizer, ask(temperature=0, maxOutputTokens=length)), seed=0)
            for length in (2, 5)]
    _decode(Recording(), tiny_tokenizer, rows, None)
    assert [len(row.generated) for row in rows] == [2, 5]
    assert batch_sizes == [2, 2, 1, 1, 1]  # the prompt pass, then one pass per token


def test_a_bad_request_in_a_batch_fails_alone(generator, tiny_model):
    good, bad = ask(temperature=0, maxOutputTokens=4), ask(temperature=5)
    results = generator.generate_batch([(tiny_model, None, good), (tiny_model, None, bad)])
    assert results[0] == generator.generate(tiny_model, None, good)
    assert isinstance(results[1], ValueError) and "temperature" in str(results[1])


def test_the_output_limit_is_checked_against_the_context(generator, tiny_model, tiny_tokenizer):
    prompt = len(render_prompt(tiny_tokenizer, chat_messages(ask())))
    context = 1024  # the tiny model's max_position_embeddings
    with pytest.raises(ValueError, match=f"maxOutputTokens is {context}, but the prompt's {prompt} tokens leave"):
        generator.generate(tiny_model, None, ask(maxOutputTokens=context))
    long = ask("word " * 200, temperature=0)  # unset maxOutputTokens: what is left of the context, if under 512
    response = generator.generate(tiny_model, None, long)
    assert 512 > context - response["usageMetadata"]["promptTokenCount"]  # the case: less than 512 left
    assert response["usageMetadata"]["totalTokenCount"] <= context
    with pytest.raises(ValueError, match="candidateCount must be between 1 and 8"):
        generator.generate(tiny_model, None, ask(candidateCount=9))


def test_in_bf16_the_base_weights_are_stored_in_bf16_and_answer_as_autocast_does(tiny_model, tiny_tokenizer,
                                                                                 monkeypatch):
    import torch

    from include.tuning_engine import generation
    from include.tuning_engine.generation import _decode, _prepared, _Row
    from include.tuning_engine.runtime import Runtime, load_model

    monkeypatch.setattr(generation, "runtime", lambda: Runtime("cpu", 1, bf16=True))
    generator = Generator()
    request = ask("a question", temperature=0, maxOutputTokens=10)
    response = generator.generate(tiny_model, None, request)
    model = generator._loaded[tiny_model][0]
    assert model.model.layers[0].mlp.down_proj.weight.dtype == torch.bfloat16
    assert model.get_output_embeddings().weight.dtype == torch.bfloat16  # untied: no cast at each token
    assert model.get_input_embeddings().weight.dtype == torch.float32

    reference = load_model(tiny_model)  # fp32 weights, rounded to bf16 by autocast at each use
    row = _Row(0, *_prepared(reference, tiny_tokenizer, request), seed=0)
    _decode(reference, tiny_tokenizer, [row], None)
    assert answer(response) == row.text


def test_with_a_larger_thread_budget_decoding_steps_time_each_count_and_answer_alike(tiny_model, monkeypatch):
    from dataclasses import replace

    import torch

    from include.tuning_engine import generation
    from include.tuning_engine.runtime import runtime

    requests = [ask(f"question {n}", temperature=0, maxOutputTokens=12) for n in range(3)]
    fixed = Generator().generate_batch([(tiny_model, None, request) for request in requests])
    monkeypatch.setattr(generation, "runtime", lambda: replace(runtime(), threads=1, max_threads=2))
    before = torch.get_num_threads()
    adaptive = Generator()
    try:
        chosen = adaptive.generate_batch([(tiny_model, None, request) for request in requests])
    finally:
        torch.set_num_threads(before)
    assert [answer(r) for r in chosen] == [answer(r) for r in fixed]
    decoding_steps = max(r["usageMetadata"]["candidatesTokenCount"] for r in chosen) - 1  # the first from the prompts' pass
    assert sum(adaptive._threads.steps_per_count.values()) == decoding_steps
    assert all(adaptive._threads.steps_per_count[count] > 0 for count in (1, 2))
