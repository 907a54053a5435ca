import re

import pytest

from include.tuning_engine.conversation import chat_messages


def test_contents_with_system_instruction():
    record = {
        "systemInstruction": {"role": "system", "parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hi "}, {"text": "there"}]},
            {"role": "model", "parts": [{"text": "Hello"}]},
        ],
    }
    assert chat_messages(record) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello"},
    ]


def test_legacy_messages_and_snake_case_give_the_same_conversation():
    legacy = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "model", "content": "A"}]}
    snake = {
        "system_instruction": {"parts": [{"text": "S"}]},
        "contents": [{"role": "user", "parts": [{"text": "Q"}]}, {"role": "model", "parts": [{"text": "A"}]}],
    }
    assert chat_messages(legacy) == chat_messages(snake)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"contents": []}, "'contents' must be a non-empty list"),
        ({"contents": [{"role": "bot", "parts": [{"text": "x"}]}]}, "contents[0].role"),
        ({"contents": [{"role": "user", "parts": [{"inlineData": {}}]}]}, "contents[0].parts[0]"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}]}, "messages[1]"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        (["not", "an", "object"], "expected a JSON object"),
    ],
)
def test_bad_records_name_the_field(record, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        chat_messages(record)
