"""Smoke-test prompts from lists, files and tuning datasets."""

from __future__ import annotations

import json

import pytest

from gemini_tuning.prompts import load_prompt_list, load_prompts_file, parse_prompt, sample
from tests.gemini_tuning.helpers import sample_lines


def test_current_format_example_splits_prompt_and_expected_answer():
    [line] = sample_lines("heldout.jsonl", 1)
    record = json.loads(line)
    prompt = parse_prompt(record)
    assert prompt.expected == record["contents"][-1]["parts"][0]["text"]
    assert prompt.contents == [{"role": "user", "parts": [{"text": record["contents"][0]["parts"][0]["text"]}]}]
    assert prompt.system_instruction == record["systemInstruction"]["parts"][0]["text"]


def test_legacy_messages_format():
    prompt = parse_prompt(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "model", "content": "Hello"},
            ]
        }
    )
    assert (prompt.system_instruction, prompt.text, prompt.expected) == ("Be brief.", "Hi", "Hello")


def test_plain_and_simple_prompts():
    prompts = load_prompt_list(["Why is the sky blue?", {"prompt": "2+2?", "expected": "4"}])
    assert [(p.text, p.expected) for p in prompts] == [("Why is the sky blue?", None), ("2+2?", "4")]


def test_single_part_object_as_in_the_original_document():
    prompt = parse_prompt({"contents": [{"role": "USER", "parts": {"text": "Why is sky blue?"}}]})
    assert prompt.contents == [{"role": "user", "parts": [{"text": "Why is sky blue?"}]}]
    assert prompt.expected is None


def test_bad_lines_are_named_by_file_and_line(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "ok"}\n\n{"neither": 1}\n')
    with pytest.raises(ValueError, match=r"prompts.jsonl, line 3: .*'prompt', 'contents' or 'messages'"):
        load_prompts_file(str(path))
    path.write_text('{"prompt": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        load_prompts_file(str(path))
    with pytest.raises(ValueError, match=r"prompts\[1\]"):
        load_prompt_list(["fine", 42])


def test_text_files_and_file_uris(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("first\nsecond\n")
    assert [p.text for p in load_prompts_file(path.as_uri())] == ["first", "second"]


def test_sample_is_seeded_and_keeps_file_order():
    prompts = load_prompt_list([str(i) for i in range(50)])
    chosen = sample(prompts, 5, seed=7)
    assert chosen == sample(prompts, 5, seed=7)
    assert [int(p.text) for p in chosen] == sorted(int(p.text) for p in chosen)
    assert sample(prompts[:3], 5, seed=7) == prompts[:3]
