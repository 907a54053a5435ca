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


class RecordedCalls:
    """A model that records the shape of the tokens of each forward pass."""

    def __init__(self, model):
        self.model, self.config, self.shapes = model, model.config, []

    def __call__(self, **inputs):
        self.shapes.append(tuple(inputs["input_ids"].shape))
        return self.model(**inputs)


def native_bf16() -> bool:
    import torch

    return any(getattr(torch.cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported",
                                                                     "_is_amx_tile_supported"))


@pytest.fixture(params=["fp32", pytest.param("bf16", marks=pytest.mark.skipif(
    not native_bf16(), reason="this CPU has no bf16 instructions: the engine never decodes in bf16 here"))])
def precision(request, monkeypatch):
    """The generator in fp32 and in bf16 (the default on this CPU when it has bf16 instructions)."""
    from include.tuning_engine import decoding, generation
    from include.tuning_engine.runtime import Runtime

    for module in (generation, decoding):
        monkeypatch.setattr(module, "runtime", lambda: Runtime("cpu", 1, bf16=request.param == "bf16"))
    return request.param


def test_a_batch_answers_exactly_as_each_request_alone(tiny_model, tiny_tokenizer, monkeypatch, precision):
    """Before the products went through torch.mm and attention row by row, bf16 tipped answers
    (a padded row's attention, and F.linear's one-row kernel, round differently)."""
    generator = Generator()
    system = {"systemInstruction": {"parts": [{"text": "Route the ticket: billing, shipping, technical, account or returns."}]}}
    requests = [{**ask(text, temperature=0, maxOutputTokens=length), **(system if n % 2 else {})}
                for n, (text, length) in enumerate([("my card was charged twice", 6), ("parcel late", 9), ("?", 3),
                                                    ("the app crashes whenever I open the settings page", 12),
                                                    ("where is my refund for order 1234", 10), ("hi", 7)])]
    requests.append(ask("refund", temperature=1.0, seed=5, maxOutputTokens=7, candidateCount=3))
    stop = answer(generator.generate(tiny_model, None, requests[3]))[2:4]
    requests.append({**requests[3], "generationConfig": {**requests[3]["generationConfig"], "stopSequences": [stop]}})
    alone = [generator.generate(tiny_model, None, request) for request in requests]
    assert alone[-1]["candidates"][0]["finishReason"] == "STOP"

    model, _ = generator._model(tiny_model, None)
    recorded = RecordedCalls(model)
    monkeypatch.setattr(generator, "_model", lambda base, adapter: (recorded, tiny_tokenizer))
    together = generator.generate_batch([(tiny_model, None, request) for request in requests])
    assert together == alone
    prompts = [render_prompt(tiny_tokenizer, chat_messages(request)) for request in requests]
    assert recorded.shapes[0] == (len(requests), max(map(len, prompts)))  # a request's candidates share its row


@pytest.mark.slow
@pytest.mark.skipif(not native_bf16(), reason="this CPU has no bf16 instructions: the engine never decodes in bf16 here")
def test_in_bf16_smollm2_answers_in_a_batch_exactly_as_alone(smollm2):
    """The prompts (and their lengths) that tipped when F.linear multiplied a lone row by another
    kernel than several rows: 3 of these 16 answers differed."""
    generator = Generator()
    requests = [ask(f"message {i}: my billing question" + " and more" * (i % 5), temperature=0,
                    maxOutputTokens=8 + i % 9) for i in range(16)]
    alone = [generator.generate(smollm2, None, request) for request in requests]
    assert generator.generate_batch([(smollm2, None, request) for request in requests]) == alone


def test_a_tuned_adapters_own_products_are_batch_invariant_too(tiny_model, tmp_path, precision):
    import torch
    from peft import LoraConfig, get_peft_model

    from include.tuning_engine.decoding import _batch_invariant_linear
    from include.tuning_engine.runtime import load_model

    torch.manual_seed(0)
    tuned = get_peft_model(load_model(tiny_model), LoraConfig(r=4, target_modules="all-linear"))
    for name, weight in tuned.named_parameters():
        if "lora_B" in name:  # (zeros when new: the adapter would change nothing)
            torch.nn.init.normal_(weight, std=0.5)
    tuned.save_pretrained(tmp_path)
    generator = Generator()
    requests = [ask(text, temperature=0, maxOutputTokens=8) for text in ("hello", "a longer question", "?")]
    alone = [generator.generate(tiny_model, tmp_path, request) for request in requests]
    assert generator.generate_batch([(tiny_model, tmp_path, request) for request in requests]) == alone
    model, _ = generator._model(tiny_model, tmp_path)
    products = [module for name, module in model.named_modules() if type(module) is torch.nn.Linear]
    assert any("lora_A" in name for name, _ in model.named_modules())
    assert all(module.forward.__func__ is _batch_invariant_linear for module in products)


def test_a_request_joins_the_rows_decoding_and_answers_as_alone(tiny_model, tiny_tokenizer, monkeypatch, precision):
    generator = Generator()
    requests = {"long": ask("a much longer question than the next one, about an invoice", temperature=0,
                            maxOutputTokens=12),
                "short": ask("hi", temperature=0, maxOutputTokens=6),
                "sampled": ask("refund", temperature=1.0, seed=3, maxOutputTokens=5, candidateCount=2)}
    alone = {key: generator.generate(tiny_model, None, request) for key, request in requests.items()}
    model, _ = generator._model(tiny_model, None)
    recorded = RecordedCalls(model)
    monkeypatch.setattr(generator, "_model", lambda base, adapter: (recorded, tiny_tokenizer))

    answers = {}
    generator.start("long", tiny_model, None, requests["long"])
    for step in range(6):  # "short" (a shorter prompt) joins at the 3rd token, "sampled" (longer) at the 5th
        if step == 2:
            generator.start("short", tiny_model, None, requests["short"])
        if step == 4:
            generator.start("sampled", tiny_model, None, requests["sampled"])
        answers.update(generator.step())
    while generator.decoding:
        answers.update(generator.step())
    assert answers == alone
    one_token = [shape[0] for shape in recorded.shapes if shape[1] == 1]  # decoding steps: rows per pass
    assert one_token[:6] == [1, 1, 2, 2, 4, 4]  # (a pass for each joining prompt comes between)
    assert len(recorded.shapes) == 1 + 11 + 2  # "long"'s prompt and 11 steps (12 tokens), and each joiner's prompt


def test_while_rows_decode_a_request_waits_for_company_a_few_tokens_at_most(tiny_model, tiny_tokenizer):
    from include.tuning_engine import decoding
    from include.tuning_engine.decoding import ModelBatch, new_rows
    from include.tuning_engine.generation import _prepared
    from include.tuning_engine.runtime import load_model

    model = load_model(tiny_model)
    recorded = RecordedCalls(model)
    batch = ModelBatch(recorded, tiny_tokenizer, None)
    prompt, options = _prepared(model, tiny_tokenizer, ask("a question", temperature=0, maxOutputTokens=30))

    def prompt_passes() -> int:
        return sum(1 for shape in recorded.shapes if shape[1] > 1)

    for key in range(4):
        batch.join(new_rows(key, prompt, options))
    batch.step(lambda key: False)  # nothing decoded: they join at once
    assert len(batch.rows) == 4 and prompt_passes() == 1
    batch.join(new_rows("alone", prompt, options))  # 1 waiting for 4 decoding: under the ratio
    for _ in range(decoding.MAX_WAITING_STEPS):
        batch.step(lambda key: False)
        assert len(batch.rows) == 4
    batch.step(lambda key: False)  # waited long enough
    assert len(batch.rows) == 5 and prompt_passes() == 2
    batch.join(new_rows("one", prompt, options))
    batch.join(new_rows("two", prompt, options))
    batch.join(new_rows("three", prompt, options))  # 3 waiting for 5 decoding: company enough
    batch.step(lambda key: False)
    assert len(batch.rows) == 8 and prompt_passes() == 3  # the three read their prompts in one pass


def test_finished_rows_leave_the_batch_and_the_padding_only_they_needed(tiny_model, tiny_tokenizer):
    from include.tuning_engine.decoding import ModelBatch, new_rows
    from include.tuning_engine.generation import _prepared
    from include.tuning_engine.runtime import load_model

    model = load_model(tiny_model)
    recorded = RecordedCalls(model)
    batch = ModelBatch(recorded, tiny_tokenizer, None)
    long_prompt, options = _prepared(model, tiny_tokenizer, ask("a much longer question", temperature=0,
                                                                maxOutputTokens=2))
    short_prompt, longer = _prepared(model, tiny_tokenizer, ask("hi", temperature=0, maxOutputTokens=5))
    rows = [*new_rows("long", long_prompt, options), *new_rows("short", short_prompt, longer)]
    batch.join(rows[:1])
    batch.join(rows[1:])
    while batch:
        batch.step(lambda key: False)
    assert [len(row.generated) for row in rows] == [2, 5]
    assert [shape[0] for shape in recorded.shapes] == [2, 2, 1, 1, 1]  # the prompts' pass, then one per token
    assert batch.cache is None and batch.starts == []
    batch.join(rows := new_rows("again", short_prompt, longer) + new_rows("long", long_prompt, longer))
    batch.step(lambda key: False)
    batch.step(lambda key: key == "long")  # the longer prompt leaves: the other's padding goes too
    assert rows[1].finish_reason == "CANCELLED" and len(rows[0].generated) == 2
    assert batch.starts == [0]  # (its 2nd token is not read yet:)
    assert batch.cache.get_seq_length() == len(short_prompt) + 1


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

    from include.tuning_engine import decoding, generation
    from include.tuning_engine.decoding import ModelBatch, new_rows
    from include.tuning_engine.generation import _prepared
    from include.tuning_engine.runtime import Runtime, load_model

    for module in (generation, decoding):
        monkeypatch.setattr(module, "runtime", lambda: Runtime("cpu", 1, bf16=True))
    generator = Generator()
    request = ask("a question", temperature=0, maxOutputTokens=10)
    response = generator.generate(tiny_model, None, request)
    model = generator._loaded[tiny_model][0]
    assert model.model.layers[0].mlp.down_proj.weight.dtype == torch.bfloat16
    assert model.get_output_embeddings().weight.dtype == torch.bfloat16  # untied: no cast at each token
    assert model.get_input_embeddings().weight.dtype == torch.float32

    reference = load_model(tiny_model)  # fp32 weights, rounded to bf16 by autocast at each use
    batch = ModelBatch(reference, tiny_tokenizer, None)
    batch.join(rows := new_rows(0, *_prepared(reference, tiny_tokenizer, request)))
    while batch:
        batch.step(lambda key: False)
    assert answer(response) == rows[0].text


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
