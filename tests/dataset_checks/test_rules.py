"""One small bad file per rule: the report must name the rule and the offending line."""

from __future__ import annotations

import pytest

from gemini_tuning.dataset_checks import suite
from gemini_tuning.dataset_checks.rules import MAX_TOKENS_PER_EXAMPLE
from gemini_tuning.dataset_checks.validate import validate_dataset

from .conftest import example

OK = example()


def legacy(*messages: tuple[str, str]) -> dict:
    return {"messages": [{"role": role, "content": content} for role, content in messages]}


def turns(*pairs: tuple[str, object]) -> dict:
    return {"contents": [{"role": role, "parts": parts if isinstance(parts, list) else [{"text": parts}]}
                         for role, parts in pairs]}  # fmt: skip


def the_finding(report, rule: str):
    found = [f for f in report.findings if f.rule == rule]
    assert found, f"no {rule} finding in:\n{report.to_text()}"
    return found[0]


# (rule, training rows, the offending line, what the line's detail says)
ERROR_CASES = [
    ("json_line", [OK, '{"contents": [unquoted]}'], 2, "invalid JSON"),
    ("json_line", [OK, OK, b'{"contents": "\xff\xfe"}'], 3, "invalid UTF-8 byte 0xff"),
    ("json_line", ["[1, 2]", OK], 1, "a JSON list instead of an object"),
    ("known_format", [OK, {"prompt": "x", "completion": "y"}], 2, "neither 'contents' nor 'messages'"),
    ("known_format", [{**OK, "messages": []}, OK], 1, "both 'contents' and 'messages'"),
    ("single_format", [OK, OK, legacy(("user", "a"), ("model", "b"))], 3, "format 'messages'"),
    ("structure", [OK, turns(("user", [{"txt": "a"}]), ("model", "b"))], 2, "contents[0].parts[0] has no text"),
    ("structure", [turns(("user", "a"), ("model", [])), OK], 1, "contents[1].parts must be a non-empty list"),
    ("structure", [legacy(("user", "a"), ("model", 7)), legacy(("user", "a"), ("model", "b"))], 1,
     "messages[1].content must be a string"),
    ("roles", [OK, turns(("user", "a"), ("assistant", "b"))], 2, "contents[1].role is 'assistant'"),
    ("roles", [turns(("system", "be brief"), ("user", "a"), ("model", "b")), OK], 1, "put it in systemInstruction"),
    ("roles", [legacy(("user", "a"), ("system", "s"), ("model", "b"))], 1, "messages[1].role is 'system'"),
    ("model_turn", [OK, turns(("user", "a"), ("user", "b"))], 2, "no model turn"),
    ("last_turn_model", [OK, OK, turns(("user", "a"), ("model", "b"), ("user", "c"))], 3, "not the model's"),
    ("empty_text", [OK, example(model="   ")], 2, "1 empty text"),
    ("example_tokens", [OK, example(user="x" * (MAX_TOKENS_PER_EXAMPLE * 4 + 8))], 2, "tokens"),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "rows", "line", "detail"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_rule_names_rule_and_line(write, rule, rows, line, detail):
    report = validate_dataset(write("train.jsonl", *rows))
    finding = the_finding(report, rule)
    assert not report.valid
    assert finding.severity == "error"
    assert f"[{rule}]" in finding.message and f"line {line} (" in finding.message
    assert detail in finding.message
    assert finding.lines[0] == line
    assert finding.message in report.to_text()


def test_non_text_parts_are_an_error_for_the_local_backend_and_a_warning_for_vertex(write):
    image = {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    path = write("train.jsonl", OK, turns(("user", [image, {"text": "what is this?"}]), ("model", "a cat")))
    local = validate_dataset(path, backend="local")
    assert "line 2 (1 non-text part(s))" in the_finding(local, "non_text_parts").message
    assert not local.valid
    vertex = validate_dataset(path, backend="vertex")
    assert vertex.valid
    assert the_finding(vertex, "non_text_parts_vertex").lines == [2]


@pytest.mark.parametrize(
    ("rule", "limit", "role"),
    [("file_size", "MAX_FILE_BYTES", "training"), ("example_count", "MAX_EXAMPLES", "training"),
     ("validation_count", "MAX_VALIDATION_EXAMPLES", "validation")],
)  # fmt: skip
def test_file_limits(write, monkeypatch, rule, limit, role):
    # The real limits (1 GB, 1M examples, 5,000) are too big for a unit test: lower them.
    monkeypatch.setattr(suite, limit, 2)
    train = write("train.jsonl", example("a"), example("b"), example("c"))
    validation = write("validation.jsonl", example("d"), example("e"), example("f"))
    report = validate_dataset(train, validation)
    finding = [f for f in report.findings if f.rule == rule and f.role == role][0]
    assert finding.severity == "error"
    assert f"[{rule}] {role} file" in finding.message and "(found " in finding.message
    assert finding.observed == (train.stat().st_size if rule == "file_size" else 3)


def test_a_file_of_exactly_the_size_limit_is_accepted(write, monkeypatch):
    train = write("train.jsonl", example("a"), b"", example("b"))
    monkeypatch.setattr(suite, "MAX_FILE_BYTES", train.stat().st_size)
    assert not [f for f in validate_dataset(train).findings if f.rule == "file_size"]
    monkeypatch.setattr(suite, "MAX_FILE_BYTES", train.stat().st_size - 1)
    assert [f.observed for f in validate_dataset(train).findings if f.rule == "file_size"] == [train.stat().st_size]


def test_blank_lines_are_a_warning_with_their_line(write):
    report = validate_dataset(write("train.jsonl", OK, "", "  ", example("b")))
    assert report.valid
    finding = the_finding(report, "blank_line")
    assert finding.severity == "warning" and finding.lines == [2, 3]


def test_byte_order_mark_is_stripped_and_reported(write):
    report = validate_dataset(write("train.jsonl", b"\xef\xbb\xbf" + b'{"contents": [{"role": "user", "parts": '
                                    b'[{"text": "a"}]}, {"role": "model", "parts": [{"text": "b"}]}]}'))  # fmt: skip
    assert report.valid
    assert "[byte_order_mark] training file train.jsonl" in the_finding(report, "byte_order_mark").message


def test_duplicates_ignore_formatting(write):
    same_but_spaced = '{ "contents":[ {"parts":[{"text":"What is 2+2?"}], "role":"user"}, {"role":"model","parts":[{"text":"4"}]} ] }'
    report = validate_dataset(write("train.jsonl", OK, example("other"), same_but_spaced))
    assert report.valid
    finding = the_finding(report, "duplicates")
    assert finding.severity == "warning"
    assert "line 3 (same as line 1)" in finding.message


def test_leakage_names_both_lines(write):
    train = write("train.jsonl", example("a"), example("b"))
    validation = write("validation.jsonl", example("c"), example("a"))
    report = validate_dataset(train, validation)
    finding = the_finding(report, "leakage")
    assert finding.role == "validation" and not report.valid
    assert "line 2 (same as line 1 of the training file)" in finding.message


def _labels(*counts: tuple[str, int]) -> list[dict]:
    return [example(f"ticket {label} {i}", label) for label, n in counts for i in range(n)]


def test_classification_needs_two_classes(write):
    report = validate_dataset(write("train.jsonl", *_labels(("billing", 3))), task="classification")
    assert not report.valid
    assert "(found 1)" in the_finding(report, "label_classes").message


def test_classification_imbalance_and_rare_classes_are_warnings(write):
    rows = _labels(("billing", 30), ("returns", 12), ("shipping", 2))
    report = validate_dataset(write("train.jsonl", *rows), task="classification")
    assert report.valid
    balance = the_finding(report, "label_balance")
    assert balance.lines == [43, 44] and "line 43 (its class has 2 examples)" in balance.message
    assert the_finding(report, "label_examples").count == 2
    summary = report.files[0]
    assert summary.class_count == 3 and summary.classes == {"billing": 30, "returns": 12, "shipping": 2}


def test_few_examples_for_the_task_is_a_warning(write):
    report = validate_dataset(write("train.jsonl", OK, example("b")), task="chat")
    assert report.valid
    finding = the_finding(report, "few_examples")
    assert finding.severity == "warning" and "(found 2)" in finding.message


def test_valid_file_in_each_format_has_no_findings(write):
    contents = write("contents.jsonl", example("a", system="be brief"), example("b"))
    messages = write("messages.jsonl", legacy(("system", "s"), ("user", "a"), ("model", "b")),
                     legacy(("user", "c"), ("model", "d"), ("user", "e"), ("model", "f")))  # fmt: skip
    for path, expected in ((contents, "contents"), (messages, "messages")):
        report = validate_dataset(path)
        assert report.valid and not report.findings, report.to_text()
        assert report.files[0].format == expected


def test_windows_line_ends_and_a_missing_final_newline_are_fine(write, tmp_path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b'{"messages": [{"role": "user", "content": "a"}, {"role": "model", "content": "b"}]}\r\n'
                     b'{"messages": [{"role": "user", "content": "c"}, {"role": "model", "content": "d"}]}')  # fmt: skip
    report = validate_dataset(path)
    assert report.valid and not report.findings
    assert report.files[0].examples == 2 and report.files[0].crlf_lines == 1
    assert "1 line(s) end with CRLF" in report.to_text()
