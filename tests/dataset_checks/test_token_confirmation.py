"""Token estimates near the per-example limit are confirmed with the backend's countTokens:
with a stand-in counter (both directions), and with the local service's real countTokens."""

from __future__ import annotations

import json

import pytest

from gemini_tuning.dataset_checks.rules import MAX_TOKENS_PER_EXAMPLE
from gemini_tuning.dataset_checks.tokens import backend_example_counter, example_request
from gemini_tuning.dataset_checks.validate import validate_dataset

from .conftest import example

LIMIT_CHARS = MAX_TOKENS_PER_EXAMPLE * 4  # where the 4-characters estimate reaches the limit


def write(tmp_path, rows) -> str:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def token_errors(report):
    return [f for f in report.findings if f.rule == "example_tokens"]


def test_estimates_near_the_limit_are_replaced_by_the_backends_count(tmp_path):
    long_but_fine = example(user="hello " * (LIMIT_CHARS // 6 + 1000))  # estimate just over the limit
    short_but_dense = example(user="字" * (LIMIT_CHARS // 3))  # estimate 3/4 of the limit; 1 char a token
    path = write(tmp_path, [example(), long_but_fine, short_but_dense])
    counted = []

    def count(row: dict) -> int:  # a stand-in: a word a token, a Chinese character a token
        contents, _ = example_request(row)
        text = "".join(part["text"] for turn in contents for part in turn["parts"])
        counted.append(len(text))
        return len(text.split()) if " " in text else len(text)

    assert token_errors(validate_dataset(path)) and len(token_errors(validate_dataset(path))[0].lines) == 1
    report = validate_dataset(path, count_tokens=count)
    assert len(counted) == 2  # the short example is far from the limit: not sent
    (error,) = token_errors(report)
    assert error.lines == [3]  # the estimate said fine, the backend says too long; and the reverse for line 2
    assert report.files[0].max_tokens == LIMIT_CHARS // 3 + len("4")  # the question and the answer


def test_legacy_messages_become_contents_and_a_system_instruction():
    contents, system = example_request({"messages": [{"role": "system", "content": "be brief"},
                                                     {"role": "user", "content": "hi"},
                                                     {"role": "model", "content": "hello"}]})
    assert system == {"parts": [{"text": "be brief"}]}
    assert [turn["role"] for turn in contents] == ["user", "model"]


@pytest.mark.slow
def test_the_local_services_count_tokens_confirms_an_estimate(tmp_path, local_vertex, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TOKEN_CHECK", json.dumps({
        "conn_type": "google_cloud_platform", "password": local_vertex.token,
        "extra": {"project": local_vertex.project, "location": local_vertex.location,
                  "base_url": local_vertex.base_url}}))
    row = example(user="hello " * (LIMIT_CHARS // 6 + 1000), system="Answer briefly.")
    path = write(tmp_path, [example(), row])
    count = backend_example_counter("gemini-2.5-flash", "token_check")
    with local_vertex.http() as http:
        expected = http.post(f"/v1/{local_vertex.parent}/publishers/google/models/gemini-2.5-flash:countTokens",
                             json={"contents": row["contents"],
                                   "systemInstruction": row["systemInstruction"]}).json()["totalTokens"]
    report = validate_dataset(path, count_tokens=count)
    assert report.files[0].max_tokens == expected != (len("hello ") * (LIMIT_CHARS // 6 + 1000)) // 4
    assert bool(token_errors(report)) == (expected > MAX_TOKENS_PER_EXAMPLE)
