"""Vertex's conversation shapes -> the chat messages a model's chat template takes.

One function serves a dataset line (current `contents` + `systemInstruction`, or the legacy
`messages` of gemini-1.0-pro-002) and a generateContent request, so what the model sees when
it is tuned and when it answers is rendered the same way.
"""

from __future__ import annotations

# Vertex's roles -> the roles chat templates know.
_TEMPLATE_ROLES = {"user": "user", "model": "assistant", "system": "system"}


def chat_messages(record: dict) -> list[dict]:
    """Return [{"role": "system"|"user"|"assistant", "content": str}, ...] for `record`.

    Accepts camelCase or snake_case keys. Raises ValueError naming the offending field.
    """
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if "messages" in record and "contents" not in record:
        return _legacy_messages(record["messages"])

    messages = []
    system = _field(record, "systemInstruction", "system_instruction")
    if system is not None:
        text = _content_text(system, "systemInstruction")
        if text:
            messages.append({"role": "system", "content": text})

    contents = record.get("contents")
    if not isinstance(contents, list) or not contents:
        raise ValueError("'contents' must be a non-empty list of {role, parts} objects")
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(content, dict):
            raise ValueError(f"{where} must be an object with 'role' and 'parts'")
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise ValueError(f"{where}.role must be 'user' or 'model', not {role!r}")
        messages.append({"role": _TEMPLATE_ROLES[role], "content": _content_text(content, where)})
    return messages


def _legacy_messages(messages: object) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list of {role, content} objects")
    converted = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ValueError(f"{where} must be an object with 'role' and 'content'")
        role = message.get("role")
        if role not in _TEMPLATE_ROLES:
            raise ValueError(f"{where}.role must be 'system', 'user' or 'model', not {role!r}")
        if role == "system" and i != 0:
            raise ValueError(f"{where}: a system message may only come first")
        content = message.get("content")
        if not isinstance(content, str):
            raise ValueError(f"{where}.content must be a string")
        converted.append({"role": _TEMPLATE_ROLES[role], "content": content})
    return converted


def _content_text(content: object, where: str) -> str:
    """Join the text parts of a Content object; only text is meaningful to a text model."""
    if isinstance(content, str):  # the SDKs accept a bare string for systemInstruction
        return content
    if not isinstance(content, dict):
        raise ValueError(f"{where} must be an object with 'parts'")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise ValueError(f"{where}.parts must be a non-empty list")
    texts = []
    for j, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            raise ValueError(f"{where}.parts[{j}] must be a text part {{'text': ...}}; only text is supported")
        texts.append(part["text"])
    return "".join(texts)


def _field(record: dict, camel: str, snake: str):
    return record[camel] if camel in record else record.get(snake)
