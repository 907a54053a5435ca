"""The streaming pass: one row per line, exact offsets, parallel ranges equal a single pass."""

from __future__ import annotations

import pytest

from gemini_tuning.dataset_checks import features, suite
from gemini_tuning.dataset_checks.features import extract_features
from gemini_tuning.dataset_checks.validate import validate_dataset

from .conftest import example, jsonl

MIXED = [
    example("a", system="s"),
    "",
    '{"contents": [broken',
    example("b", "label-x"),
    b'{"contents": "\xff"}',
    example("c", "label-y"),
    example("a", system="s"),
] * 3


def test_offsets_and_byte_counts_match_the_file(tmp_path):
    path = tmp_path / "train.jsonl"
    data = b"\xef\xbb\xbf" + jsonl(*MIXED).replace(b"\n", b"\r\n")[:-2]  # BOM, CRLF, no final newline
    path.write_bytes(data)
    table = extract_features(path, workers=1)
    frame = table.frame
    assert list(frame["line"]) == list(range(1, len(MIXED) + 1))
    assert int(frame["bytes"].sum()) == len(data) == table.size_bytes
    assert table.has_bom and table.crlf_lines == len(MIXED) - 1
    for offset, size in zip(frame["offset"], frame["bytes"]):
        line = data[offset : offset + size]
        assert line.endswith(b"\n") or offset + size == len(data)
    assert list(frame["status"][:5]) == ["ok", "blank", "invalid_json", "ok", "invalid_utf8"]


def test_the_frame_is_compact(tmp_path):
    """What stays in memory is about 60 bytes per line, whatever the size of the examples."""
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl(*[example("x" * 5000, "y" * 5000, system="z" * 1000)] * 200))
    frame = extract_features(path).frame
    assert frame.memory_usage(deep=True).sum() / len(frame) < 100


def test_parallel_ranges_give_the_same_frame_and_notes(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl(*MIXED))
    single = extract_features(path, with_label=True, workers=1)
    parallel = extract_features(path, with_label=True, workers=3)
    assert single.frame.equals(parallel.frame)
    assert single.notes == parallel.notes
    assert list(single.frame["label"].dropna().unique()) == ["4", "label-x", "label-y"]


def test_the_hash_ignores_spelling(tmp_path):
    spaced = '{"systemInstruction": {"parts": [{"text": "s"}]},   "contents": [{"parts": [{"text": "a"}], "role": "user"}, {"role": "model", "parts": [{"text": "4"}], "extra": 1}]}'
    snake_case = '{"system_instruction": {"parts": [{"text": "s"}]}, "contents": [{"role": "user", "parts": [{"text": "a"}]}, {"role": "model", "parts": [{"text": "4"}]}]}'
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl(example("a", system="s"), spaced, snake_case, example("a"), example("a", system="t")))
    hashes = list(extract_features(path).frame["hash"])
    assert hashes[0] == hashes[1] == hashes[2]
    assert len({hashes[0], hashes[3], hashes[4]}) == 3


def test_fast_path_and_diagnostic_walk_agree_on_features(tmp_path):
    """A line the fast path refuses (here: an extra bad part) is still summarised by the walk."""
    good = example("hello there", "general kenobi", system="s")
    with_bad_part = {**good, "contents": [good["contents"][0], {"role": "model", "parts": [{"text": "general kenobi"}, 7]}]}
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl(good, with_bad_part))
    frame = extract_features(path, with_label=True).frame
    columns = ["turns", "model_turns", "last_role_model", "empty_texts", "non_text_parts", "chars", "tokens", "label"]
    assert frame.loc[0, columns].tolist() == frame.loc[1, columns].tolist()
    assert frame["malformed"].tolist() == [0, 1]


@pytest.mark.slow
def test_tokens_counted_with_a_real_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = ["the quick brown fox", "jumps over the lazy dog", "s"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    bpe.train_from_iterator(texts * 10, trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>")
    tokenizer.save_pretrained(tmp_path / "tokenizer")

    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl(example(texts[0], texts[1], system="s"), "not json", example("fox", "dog")))
    table = extract_features(path, tokenizer=str(tmp_path / "tokenizer"))
    expected = len(tokenizer("s\nthe quick brown fox\njumps over the lazy dog", add_special_tokens=False)["input_ids"])
    assert table.tokens_counted
    assert list(table.frame["tokens"]) == [expected, 0, 2]


@pytest.mark.slow
def test_a_fast_tokenizer_counts_as_transformers_does_without_importing_torch(tmp_path):
    import subprocess
    import sys

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = ["the quick brown fox", "  jumps\tover the lazy dog ", "café naïve 東京 🙂", "", "s"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts * 10, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>")
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    expected = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    probe = ("import sys, json; from gemini_tuning.dataset_checks.tokens import load_token_counter; "
             f"counts = load_token_counter({str(tmp_path / 'tokenizer')!r})(json.loads(sys.argv[1])); "
             "print(json.dumps([counts, 'transformers' in sys.modules or 'torch' in sys.modules]))")
    import json

    out = subprocess.run([sys.executable, "-c", probe, json.dumps(texts)], capture_output=True, text=True, check=True)
    counts, imported_torch = json.loads(out.stdout)
    assert counts == expected and max(counts) > 1
    assert not imported_torch


# Errors of each kind next to one another, so that chunk and range boundaries fall on and around them.
BOUNDARY_ROWS = MIXED + [
    {"contents": [{"role": "system", "parts": [{"text": "s"}]}, {"role": "model", "parts": [{"text": "x"}]}]},
    example("   ", "label-x"),
    {"contents": [{"role": "user", "parts": [{"text": "q"}]}]},
    {"messages": [{"role": "user", "content": "hi"}, {"role": "model", "content": "label-y"}]},
    example("b", "label-x"),
]


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 5, 8, 61, 256])
def test_chunk_boundaries_change_nothing(tmp_path, monkeypatch, chunk_bytes):
    """Lines cut anywhere by the chunks (a BOM, CRLF, no final newline) read as in one chunk."""
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + jsonl(*BOUNDARY_ROWS).replace(b"\n", b"\r\n")[:-2])
    whole = extract_features(path, with_label=True, workers=1)
    monkeypatch.setattr(features, "_CHUNK_BYTES", chunk_bytes)
    chunked = extract_features(path, with_label=True, workers=1)
    assert chunked.frame.equals(whole.frame)
    assert chunked.notes == whole.notes
    assert (chunked.has_bom, chunked.crlf_lines) == (whole.has_bom, whole.crlf_lines) == (True, len(BOUNDARY_ROWS) - 1)


@pytest.mark.parametrize("workers", [2, 5])
def test_parallel_ranges_give_the_same_report(tmp_path, workers):
    """Worker ranges start next to bad lines: the findings keep their lines and details."""
    train = tmp_path / "train.jsonl"
    train.write_bytes(jsonl(*BOUNDARY_ROWS * 3))
    serial = validate_dataset(train, task="classification", workers=1)
    parallel = validate_dataset(train, task="classification", workers=workers)
    assert parallel.to_dict() == serial.to_dict()
    rows = BOUNDARY_ROWS * 3
    unreadable = [number for number, row in enumerate(rows, 1) if isinstance(row, (str, bytes)) and row]
    system_turn = [number for number, row in enumerate(rows, 1) if row is BOUNDARY_ROWS[len(MIXED)]]
    lines = {finding.rule: finding.lines for finding in serial.findings}
    assert lines["json_line"] == unreadable[: suite.LINES_SHOWN]
    assert lines["roles"] == system_turn == [22, 48, 74]
