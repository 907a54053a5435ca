"""Google's lenient JSON, read once into canonical form (wire.canonical)."""

from __future__ import annotations

import orjson
import pytest

from include.local_vertex.errors import ApiError
from include.local_vertex.wire import MAX_DEPTH, canonical


def test_the_guides_prompt_body_becomes_canonical():
    body = {"contents": [{"role": "USER", "parts": {"text": "Why is sky blue?"}}],
            "generation_config": {"temperature": 0.2, "top_p": 0.95, "top_k": 40, "max_output_tokens": 8,
                                  "stop_sequences": "END"}}
    assert canonical(body, "GenerateContentRequest") == {
        "contents": [{"role": "user", "parts": [{"text": "Why is sky blue?"}]}],
        "generationConfig": {"temperature": 0.2, "topP": 0.95, "topK": 40, "maxOutputTokens": 8,
                             "stopSequences": ["END"]}}


def test_one_object_for_contents_and_enums_in_any_case():
    body = {"contents": {"parts": [{"text": "hi"}]},
            "safety_settings": {"category": "harm_category_hate_speech", "threshold": "Block_None"}}
    assert canonical(body, "GenerateContentRequest") == {
        "contents": [{"parts": [{"text": "hi"}]}],
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]}


def test_label_keys_and_unknown_fields_are_left_as_written():
    body = {"base_model": "gemini-2.5-flash", "labels": {"cost_center": "a_b"}, "my_field": {"x_y": 1},
            "supervised_tuning_spec": {"hyper_parameters": {"adapter_size": "adapter_size_four"}}}
    assert canonical(body, "TuningJob") == {
        "baseModel": "gemini-2.5-flash", "labels": {"cost_center": "a_b"}, "myField": {"x_y": 1},
        "supervisedTuningSpec": {"hyperParameters": {"adapterSize": "ADAPTER_SIZE_FOUR"}}}


def test_a_role_is_lowercased_in_contents_only():
    assert canonical({"role": "SYSTEM", "parts": []}, "Content")["role"] == "system"
    assert canonical({"contents": [{"role": "Model", "parts": []}]}, "CountTokensRequest")["contents"][0]["role"] == "model"


def test_messages_nested_beyond_protobufs_limit_are_a_400():
    nested = '{"items":' * (MAX_DEPTH + 10) + "{}" + "}" * (MAX_DEPTH + 10)
    body = orjson.loads('{"generationConfig": {"responseSchema": ' + nested + "}}")
    with pytest.raises(ApiError) as raised:
        canonical(body, "GenerateContentRequest")
    assert raised.value.http_code == 400 and "nest deeper" in raised.value.message
