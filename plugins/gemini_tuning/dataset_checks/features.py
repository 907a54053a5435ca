"""Streaming feature extraction: one compact row of numbers per JSONL line.

The file is read in large binary chunks and each line is decoded with orjson and dropped at
once. What stays in memory is a handful of numpy columns per example (line, byte offset,
format, turn counts, characters, tokens, content hash, label...) and the first few detailed
messages per rule, so a 1 GB file costs tens of megabytes, not gigabytes of Python objects.
The rules themselves are checked afterwards, over the frame, by the expectation suite.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from array import array
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import orjson

from gemini_tuning.dataset_checks.rules import CHARS_PER_TOKEN

if TYPE_CHECKING:
    import pandas as pd

STATUSES = ("ok", "blank", "invalid_utf8", "invalid_json", "not_object")
FORMATS = ("none", "contents", "messages", "unknown")
_OK, _BLANK, _BAD_UTF8, _BAD_JSON, _NOT_OBJECT = range(len(STATUSES))
_NONE, _CONTENTS, _MESSAGES, _UNKNOWN = range(len(FORMATS))

CONTENTS_ROLES = frozenset({"user", "model"})
MESSAGES_ROLES = frozenset({"system", "user", "model"})
# Part fields Vertex accepts besides text (camelCase and the snake_case protobuf JSON also accepts).
NON_TEXT_PART_FIELDS = frozenset(
    {
        "inlineData", "inline_data", "fileData", "file_data",
        "functionCall", "function_call", "functionResponse", "function_response",
    }
)  # fmt: skip
_BOM = b"\xef\xbb\xbf"
_CHUNK_BYTES = 16 << 20
_TOKENIZER_BATCH = 512
_PARALLEL_FROM_BYTES = 64 << 20
MAX_NOTES_PER_RULE = 20

# A token counter takes the texts of a batch of examples and returns their token counts.
TokenCounter = Callable[[list[str]], list[int]]


@dataclass
class FeatureTable:
    """What the streaming pass keeps of one file."""

    path: str
    frame: pd.DataFrame
    size_bytes: int
    has_bom: bool
    crlf_lines: int
    format: str  # the file's format: the most common one among its examples ("none" if none)
    tokens_counted: bool  # True: a real tokenizer counted them; False: estimated from characters
    notes: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # rule -> [(line, detail)]


class _Notes:
    """The first MAX_NOTES_PER_RULE detailed messages of each rule, with their line numbers."""

    def __init__(self) -> None:
        self.by_rule: dict[str, list[tuple[int, str]]] = defaultdict(list)

    def add(self, rule: str, line: int, message: str) -> None:
        kept = self.by_rule[rule]
        if len(kept) < MAX_NOTES_PER_RULE:
            kept.append((line, message))


class _Columns:
    """Growable typed columns (array.array appends are cheap and compact)."""

    def __init__(self, with_label: bool) -> None:
        self.line = array("i")
        self.offset = array("q")
        self.bytes = array("i")
        self.status = array("b")
        self.format = array("b")
        self.turns = array("h")
        self.model_turns = array("h")
        self.bad_roles = array("h")
        self.last_role_model = array("b")
        self.empty_texts = array("h")
        self.non_text_parts = array("h")
        self.malformed = array("h")
        self.chars = array("i")
        self.hash = array("q")
        self.label = array("i") if with_label else None


class _Example:
    """The normalised view of one example that both formats reduce to."""

    __slots__ = ("turns", "bad_roles", "malformed")

    def __init__(self) -> None:
        # (role, texts, non-text parts); the system instruction is a leading "system" turn.
        self.turns: list[tuple[str, list[str], list]] = []
        self.bad_roles = 0
        self.malformed = 0


def _part_texts(parts, where: str, line: int, example: _Example, notes: _Notes) -> tuple[list[str], list]:
    texts: list[str] = []
    others: list = []
    if type(parts) is not list or not parts:
        example.malformed += 1
        notes.add("structure", line, f"{where}.parts must be a non-empty list")
        return texts, others
    for index, part in enumerate(parts):
        if type(part) is not dict:
            example.malformed += 1
            notes.add("structure", line, f"{where}.parts[{index}] must be an object")
        elif "text" in part:
            text = part["text"]
            if type(text) is str:
                texts.append(text)
            else:
                example.malformed += 1
                notes.add("structure", line, f"{where}.parts[{index}].text must be a string")
        elif NON_TEXT_PART_FIELDS.intersection(part):
            others.append(part)
        else:
            example.malformed += 1
            notes.add("structure", line, f"{where}.parts[{index}] has no text or known data field")
    return texts, others


def _read_contents(obj: dict, line: int, notes: _Notes) -> _Example:
    example = _Example()
    system = obj.get("systemInstruction", obj.get("system_instruction"))
    if system is not None:
        if type(system) is dict:
            texts, others = _part_texts(system.get("parts"), "systemInstruction", line, example, notes)
            example.turns.append(("system", texts, others))
        else:
            example.malformed += 1
            notes.add("structure", line, "systemInstruction must be an object")
    contents = obj["contents"]
    if type(contents) is not list or not contents:
        example.malformed += 1
        notes.add("structure", line, "contents must be a non-empty list")
        return example
    for index, turn in enumerate(contents):
        where = f"contents[{index}]"
        if type(turn) is not dict:
            example.malformed += 1
            notes.add("structure", line, f"{where} must be an object")
            continue
        role = turn.get("role")
        if role not in CONTENTS_ROLES:
            example.bad_roles += 1
            hint = ": put it in systemInstruction" if role == "system" else ""
            notes.add("roles", line, f"{where}.role is {role!r}, expected 'user' or 'model'{hint}")
        texts, others = _part_texts(turn.get("parts"), where, line, example, notes)
        example.turns.append((role, texts, others))
    return example


def _read_messages(obj: dict, line: int, notes: _Notes) -> _Example:
    example = _Example()
    messages = obj["messages"]
    if type(messages) is not list or not messages:
        example.malformed += 1
        notes.add("structure", line, "messages must be a non-empty list")
        return example
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if type(message) is not dict:
            example.malformed += 1
            notes.add("structure", line, f"{where} must be an object")
            continue
        role = message.get("role")
        if role not in MESSAGES_ROLES or (role == "system" and index != 0):
            example.bad_roles += 1
            expected = "'system' (first message only), 'user' or 'model'"
            notes.add("roles", line, f"{where}.role is {role!r}, expected {expected}")
        content = message.get("content")
        if type(content) is not str:
            example.malformed += 1
            notes.add("structure", line, f"{where}.content must be a string")
            content = ""
        example.turns.append((role, [content], []))
    return example


class _Extractor:
    """Turns the lines of one byte range of the file into columns (one instance per worker)."""

    def __init__(self, with_label: bool, count_tokens: TokenCounter | None) -> None:
        self.columns = _Columns(with_label)
        self.notes = _Notes()
        self.labels: dict[str, int] = {}
        self.count_tokens = count_tokens
        self.token_counts = array("i")
        self.pending_texts: list[str] = []
        self.crlf_lines = 0
        self.has_bom = False

    def add_line(self, raw: bytes, line: int, offset: int, newline: bool = True, first_of_file: bool = False) -> None:
        columns = self.columns
        columns.line.append(line)
        columns.offset.append(offset)
        columns.bytes.append(len(raw) + newline)
        if first_of_file and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
            self.has_bom = True
            self.notes.add("byte_order_mark", 1, "UTF-8 byte order mark at the start of the file")
        if raw.endswith(b"\r"):
            raw = raw[:-1]
            self.crlf_lines += 1
        status, obj = self._decode(raw, line)
        columns.status.append(status)
        if status != _OK:
            self._add_neutral(_NONE, label=-1)
            return
        has_contents, has_messages = "contents" in obj, "messages" in obj
        if has_contents == has_messages:
            found = "both 'contents' and 'messages'" if has_contents else "neither 'contents' nor 'messages'"
            self.notes.add("known_format", line, f"the object has {found}")
            self._add_neutral(_UNKNOWN, label=-1)
            return
        if has_contents:
            example = _read_contents(obj, line, self.notes)
        else:
            example = _read_messages(obj, line, self.notes)
        self._add_example(_CONTENTS if has_contents else _MESSAGES, example, line)

    def _decode(self, raw: bytes, line: int):
        if not raw.strip():
            self.notes.add("blank_line", line, "blank line")
            return _BLANK, None
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                byte = raw[bad.start]
                self.notes.add("json_line", line, f"invalid UTF-8 byte 0x{byte:02x} at byte {bad.start + 1} of the line")
                return _BAD_UTF8, None
            self.notes.add("json_line", line, f"invalid JSON: {error.msg} at column {error.colno}")
            return _BAD_JSON, None
        if type(obj) is not dict:
            self.notes.add("json_line", line, f"a JSON {type(obj).__name__} instead of an object")
            return _NOT_OBJECT, None
        return _OK, obj

    def _add_neutral(self, format_code: int, label: int) -> None:
        """Rows that are not readable examples: the per-example rules skip them."""
        columns = self.columns
        columns.format.append(format_code)
        for column in (columns.turns, columns.model_turns, columns.bad_roles, columns.empty_texts,
                       columns.non_text_parts, columns.malformed, columns.chars):  # fmt: skip
            column.append(0)
        columns.last_role_model.append(0)
        columns.hash.append(0)
        if columns.label is not None:
            columns.label.append(label)
        if self.count_tokens is not None:
            self.pending_texts.append("")

    def _add_example(self, format_code: int, example: _Example, line: int) -> None:
        columns = self.columns
        turns = example.turns
        model_turns = empty = non_text = chars = 0
        canonical: list = []
        for role, texts, others in turns:
            if role == "model":
                model_turns += 1
            for text in texts:
                if not text or text.isspace():
                    empty += 1
                chars += len(text)
            non_text += len(others)
            canonical.append(role)
            canonical.append(texts)
            if others:
                canonical.append(others)
        if empty:
            self.notes.add("empty_text", line, f"{empty} empty text(s)")
        if non_text:
            self.notes.add("non_text_parts", line, f"{non_text} non-text part(s)")
        conversation = [turn for turn in turns if turn[0] != "system"]
        last_role = conversation[-1][0] if conversation else None
        columns.format.append(format_code)
        columns.turns.append(len(conversation))
        columns.model_turns.append(model_turns)
        columns.bad_roles.append(example.bad_roles)
        columns.last_role_model.append(last_role == "model")
        columns.empty_texts.append(empty)
        columns.non_text_parts.append(non_text)
        columns.malformed.append(example.malformed)
        columns.chars.append(chars)
        # The hash covers roles and content, not formatting: the same conversation written with
        # other spacing, key order or in the other format is the same example.
        digest = hashlib.blake2b(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS), digest_size=8)
        columns.hash.append(int.from_bytes(digest.digest(), "little", signed=True))
        if columns.label is not None:
            label = "".join(conversation[-1][1]).strip() if last_role == "model" else None
            columns.label.append(-1 if label is None else self.labels.setdefault(label, len(self.labels)))
        if self.count_tokens is not None:
            self.pending_texts.append("\n".join(text for turn in turns for text in turn[1]))
            if len(self.pending_texts) >= _TOKENIZER_BATCH:
                self._flush_tokens()

    def _flush_tokens(self) -> None:
        if self.pending_texts:
            self.token_counts.extend(self.count_tokens(self.pending_texts))
            self.pending_texts = []

    def finish(self) -> _Part:
        if self.count_tokens is not None:
            self._flush_tokens()
        return _Part(
            columns=self.columns,
            token_counts=self.token_counts if self.count_tokens is not None else None,
            labels=list(self.labels),
            notes=dict(self.notes.by_rule),
            crlf_lines=self.crlf_lines,
            has_bom=self.has_bom,
        )


@dataclass
class _Part:
    """The columns of one byte range, picklable so that a worker process can send it back."""

    columns: _Columns
    token_counts: array | None
    labels: list[str]
    notes: dict[str, list[tuple[int, str]]]
    crlf_lines: int
    has_bom: bool


def _extract_range(path: str, start: int, end: int, with_label: bool, tokenizer: str | None) -> _Part:
    """Read the lines in bytes [start, end) of the file; line numbers count from 1 in the range."""
    from gemini_tuning.dataset_checks.tokens import load_token_counter

    extractor = _Extractor(with_label, load_token_counter(tokenizer) if tokenizer else None)
    line, offset, carry = 0, start, b""
    with open(path, "rb") as stream:
        stream.seek(start)
        remaining = end - start
        while remaining > 0 and (chunk := stream.read(min(_CHUNK_BYTES, remaining))):
            remaining -= len(chunk)
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()
            for raw in lines:
                line += 1
                extractor.add_line(raw, line, offset, first_of_file=offset == 0)
                offset += len(raw) + 1
            del lines
    if carry:  # the last line of the file, without a final newline
        extractor.add_line(carry, line + 1, offset, newline=False, first_of_file=offset == 0)
    return extractor.finish()


def _line_starts(path: Path, size: int, parts: int) -> list[int]:
    """Split points for `parts` workers, each at the start of a line."""
    starts = [0]
    with path.open("rb") as stream:
        for index in range(1, parts):
            stream.seek(max(size * index // parts, starts[-1]))
            stream.readline()
            position = stream.tell()
            if position < size:
                starts.append(position)
    return starts


def _merge(path: Path, size: int, parts: list[_Part], tokens_counted: bool) -> FeatureTable:
    import numpy as np
    import pandas as pd

    def column(name: str, dtype) -> np.ndarray:
        return np.concatenate([np.frombuffer(getattr(p.columns, name), dtype=dtype) for p in parts])

    # Line numbers and notes are per range: shift them by the lines of the ranges before.
    line_bases = np.cumsum([0] + [len(p.columns.line) for p in parts[:-1]])
    lines = np.concatenate(
        [np.frombuffer(p.columns.line, dtype=np.int32) + base for p, base in zip(parts, line_bases)]
    ).astype(np.int32)
    notes: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for part, base in zip(parts, line_bases):
        for rule, found in part.notes.items():
            notes[rule].extend((line + int(base), message) for line, message in found)
    notes = {rule: found[:MAX_NOTES_PER_RULE] for rule, found in notes.items()}

    chars = column("chars", np.int32)
    if tokens_counted:
        tokens = np.concatenate([np.frombuffer(p.token_counts, dtype=np.int32) for p in parts])
    else:
        tokens = ((chars.astype(np.int64) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN).astype(np.int32)
    status = column("status", np.int8)
    format_codes = column("format", np.int8)
    data = {
        "line": lines,
        "offset": column("offset", np.int64),
        "bytes": column("bytes", np.int32),
        "status": pd.Categorical.from_codes(status, categories=STATUSES),
        "format": pd.Categorical.from_codes(format_codes, categories=FORMATS),
        # A readable example: the per-example rules apply to these rows only.
        "parsed": (status == _OK) & ((format_codes == _CONTENTS) | (format_codes == _MESSAGES)),
        "turns": column("turns", np.int16),
        "model_turns": column("model_turns", np.int16),
        "bad_roles": column("bad_roles", np.int16),
        "last_role_model": column("last_role_model", np.int8).astype(bool),
        "empty_texts": column("empty_texts", np.int16),
        "non_text_parts": column("non_text_parts", np.int16),
        "malformed": column("malformed", np.int16),
        "chars": chars,
        "tokens": tokens,
        "hash": column("hash", np.int64),
    }
    if parts[0].columns.label is not None:
        # Each range numbered its labels itself: map them onto one list of categories.
        categories = list(dict.fromkeys(label for p in parts for label in p.labels))
        index = {label: code for code, label in enumerate(categories)}
        codes = []
        for part in parts:
            mapping = np.array([index[label] for label in part.labels] + [-1], dtype=np.int32)
            codes.append(mapping[np.frombuffer(part.columns.label, dtype=np.int32)])  # -1 -> -1
        data["label"] = pd.Categorical.from_codes(np.concatenate(codes), categories=categories or ["(none)"])
    frame = pd.DataFrame(data)
    known = frame.loc[frame["parsed"], "format"].value_counts()
    return FeatureTable(
        path=str(path),
        frame=frame,
        size_bytes=size,
        has_bom=parts[0].has_bom,
        crlf_lines=sum(p.crlf_lines for p in parts),
        format=str(known.idxmax()) if known.sum() else "none",
        tokens_counted=tokens_counted,
        notes=notes,
    )


def extract_features(
    path: str | Path,
    *,
    with_label: bool = False,
    tokenizer: str | None = None,
    workers: int | None = None,
) -> FeatureTable:
    """Read a JSONL dataset once and return its feature frame.

    :param path: a local file.
    :param with_label: add a ``label`` column (the last model turn's text), for classification.
    :param tokenizer: a tokenizer folder to count tokens with; by default they are estimated.
    :param workers: processes reading ranges of the file in parallel (default: up to 2 CPUs
        for files over 64 MB; 1 reads in this process).
    """
    path = Path(path)
    size = path.stat().st_size
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if size > _PARALLEL_FROM_BYTES else 1
    starts = _line_starts(path, size, workers) if workers > 1 else [0]
    ranges = list(zip(starts, starts[1:] + [size]))
    if len(ranges) == 1:
        parts = [_extract_range(str(path), 0, size, with_label, tokenizer)]
    else:
        # spawn, not fork: the caller may be an Airflow task process with threads running.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(len(ranges), mp_context=context) as pool:
            futures = [pool.submit(_extract_range, str(path), a, b, with_label, tokenizer) for a, b in ranges]
            parts = [future.result() for future in futures]
    return _merge(path, size, parts, tokens_counted=tokenizer is not None)
