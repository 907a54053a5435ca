"""Streaming feature extraction: one compact row of numbers per JSONL line.

The file is read in large binary chunks, each line is decoded and dropped at once. What stays
in memory is one packed record per line (line, byte offset, format, turn counts, characters,
tokens, content hash, label code...) and the first few detailed messages per rule, so a 1 GB
file costs tens of megabytes, not gigabytes of Python objects. Well-formed lines take the
msgspec fast path (schema.py); any other line gets the orjson diagnostic walk, which records
what is wrong and where. Large files are read by two processes, each over a range of lines.
The rules themselves are checked afterwards, over the frame, by the expectation suite.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import struct
from array import array
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import msgspec
import orjson
import xxhash

from gemini_tuning.dataset_checks import schema
from gemini_tuning.dataset_checks.rules import CHARS_PER_TOKEN

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
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
# One packed record per line: (column, struct code). numpy reads the same layout back.
ROW_FIELDS = (
    ("line", "i"), ("offset", "q"), ("bytes", "i"), ("status", "b"), ("format", "b"), ("turns", "i"),
    ("model_turns", "i"), ("bad_roles", "i"), ("last_role_model", "?"), ("empty_texts", "i"),
    ("non_text_parts", "i"), ("malformed", "i"), ("chars", "i"), ("hash", "Q"), ("label", "i"),
)  # fmt: skip
_ROW = struct.Struct("<" + "".join(code for _, code in ROW_FIELDS))
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


class _Problems:
    """What the diagnostic walk found wrong in one example, besides its notes."""

    __slots__ = ("bad_roles", "malformed")

    def __init__(self) -> None:
        self.bad_roles = 0
        self.malformed = 0


def _read_parts(parts, where: str, line: int, problems: _Problems, notes: _Notes) -> list[schema.Part]:
    """The readable parts, as schema structs; the others are noted and left out."""
    found: list[schema.Part] = []
    if type(parts) is not list or not parts:
        problems.malformed += 1
        notes.add("structure", line, f"{where}.parts must be a non-empty list")
        return found
    for index, part in enumerate(parts):
        data_fields = NON_TEXT_PART_FIELDS.intersection(part) if type(part) is dict else ()
        if type(part) is not dict:
            problems.malformed += 1
            notes.add("structure", line, f"{where}.parts[{index}] must be an object")
        elif "text" in part:
            if type(part["text"]) is str:
                found.append(schema.Part(text=part["text"]))
            else:
                problems.malformed += 1
                notes.add("structure", line, f"{where}.parts[{index}].text must be a string")
        elif data_fields:
            found.append(schema.Part(**{name: msgspec.Raw(orjson.dumps(part[name])) for name in data_fields}))
        else:
            problems.malformed += 1
            notes.add("structure", line, f"{where}.parts[{index}] has no text or known data field")
    return found


def _read_contents(obj: dict, line: int, problems: _Problems, notes: _Notes) -> schema.Example:
    example = schema.Example(contents=[])
    system = obj.get("systemInstruction", obj.get("system_instruction"))
    if system is not None:
        if type(system) is dict:
            parts = _read_parts(system.get("parts"), "systemInstruction", line, problems, notes)
            example.systemInstruction = schema.SystemInstruction(parts=parts)
        else:
            problems.malformed += 1
            notes.add("structure", line, "systemInstruction must be an object")
    contents = obj["contents"]
    if type(contents) is not list or not contents:
        problems.malformed += 1
        notes.add("structure", line, "contents must be a non-empty list")
        return example
    for index, turn in enumerate(contents):
        where = f"contents[{index}]"
        if type(turn) is not dict:
            problems.malformed += 1
            notes.add("structure", line, f"{where} must be an object")
            continue
        role = turn.get("role")
        if role not in CONTENTS_ROLES:
            problems.bad_roles += 1
            hint = ": put it in systemInstruction" if role == "system" else ""
            notes.add("roles", line, f"{where}.role is {role!r}, expected 'user' or 'model'{hint}")
        parts = _read_parts(turn.get("parts"), where, line, problems, notes)
        example.contents.append(schema.Content(role=role, parts=parts))
    return example


def _read_messages(obj: dict, line: int, problems: _Problems, notes: _Notes) -> schema.Example:
    example = schema.Example(messages=[])
    messages = obj["messages"]
    if type(messages) is not list or not messages:
        problems.malformed += 1
        notes.add("structure", line, "messages must be a non-empty list")
        return example
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if type(message) is not dict:
            problems.malformed += 1
            notes.add("structure", line, f"{where} must be an object")
            continue
        role = message.get("role")
        if role not in MESSAGES_ROLES or (role == "system" and index != 0):
            problems.bad_roles += 1
            expected = "'system' (first message only), 'user' or 'model'"
            notes.add("roles", line, f"{where}.role is {role!r}, expected {expected}")
        content = message.get("content")
        if type(content) is not str:
            problems.malformed += 1
            notes.add("structure", line, f"{where}.content must be a string")
            content = ""
        example.messages.append(schema.Message(role=role, content=content))
    return example


class _Extractor:
    """Turns the lines of one byte range of the file into packed rows (one instance per worker)."""

    def __init__(self, with_label: bool, count_tokens: TokenCounter | None) -> None:
        self.rows = bytearray()
        self.notes = _Notes()
        self.with_label = with_label
        self.labels: dict[str, int] = {}
        self.count_tokens = count_tokens
        self.token_counts = array("i")
        self.pending_texts: list[str] = []
        self.crlf_lines = 0
        self.has_bom = False

    def add_lines(self, buffer: bytes, line: int, offset: int, at_end: bool) -> tuple[int, int, int]:
        """Add the lines of buffer, numbered from line + 1, the first at byte offset.

        Returns the next line number and offset, and how many bytes of buffer were read: the rest
        is the start of a line the next chunk ends (unless at_end: the file ends there). One call
        per chunk, lines found by find (memchr; bytes.split looks at each byte in turn): this loop
        is the pass's hot path.
        """
        decode, add_example, find = schema.decoder.decode, self._add_example, buffer.find
        start, stop = 0, len(buffer)
        while start < stop:
            newline = find(b"\n", start)
            if newline != -1:
                raw, next_start = buffer[start:newline], newline + 1
            elif at_end:  # the last line of the file, without a final newline
                raw, next_start = buffer[start:], stop
            else:
                break
            line += 1
            size = next_start - start
            start = next_start
            if offset == 0 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
                self.has_bom = True
            if raw.endswith(b"\r"):
                raw = raw[:-1]
                self.crlf_lines += 1
            try:
                example = decode(raw)
            except (msgspec.DecodeError, UnicodeDecodeError):
                example = None
            if example is None or not add_example(line, offset, size, example, None, True):
                self._diagnose(raw, line, offset, size)
            offset += size
        return line, offset, start

    def _diagnose(self, raw: bytes, line: int, offset: int, size: int) -> None:
        """The slow path: find out and note what is wrong with the line, keep what can be read."""
        status, obj = self._decode(raw, line)
        if status != _OK:
            self._add_unreadable(line, offset, size, status, _NONE)
            return
        has_contents, has_messages = "contents" in obj, "messages" in obj
        if has_contents == has_messages:
            found = "both 'contents' and 'messages'" if has_contents else "neither 'contents' nor 'messages'"
            self.notes.add("known_format", line, f"the object has {found}")
            self._add_unreadable(line, offset, size, _OK, _UNKNOWN)
            return
        problems = _Problems()
        read = _read_contents if has_contents else _read_messages
        self._add_example(line, offset, size, read(obj, line, problems, self.notes), problems, strict=False)

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
                where = f"at byte {bad.start + 1} of the line"
                self.notes.add("json_line", line, f"invalid UTF-8 byte 0x{byte:02x} {where}")
                return _BAD_UTF8, None
            self.notes.add("json_line", line, f"invalid JSON: {error.msg} at column {error.colno}")
            return _BAD_JSON, None
        if type(obj) is not dict:
            self.notes.add("json_line", line, f"a JSON {type(obj).__name__} instead of an object")
            return _NOT_OBJECT, None
        return _OK, obj

    def _add_unreadable(self, line: int, offset: int, size: int, status: int, format_code: int) -> None:
        """A line that is no readable example: the per-example rules skip it."""
        self.rows += _ROW.pack(line, offset, size, status, format_code, 0, 0, 0, False, 0, 0, 0, 0, 0, -1)
        if self.count_tokens is not None:
            self._count_later("")

    def _add_example(
        self, line: int, offset: int, size: int, example: schema.Example, problems: _Problems | None, strict: bool
    ) -> bool:
        """Summarise one example into a row.

        Both paths end here; the fast path passes no problems (it found none). strict (the fast
        path): add nothing and return False for what only the diagnostic walk can explain (both
        formats, a misplaced system message, a part with neither text nor data).
        """
        non_text = 0
        contents = example.contents
        if contents is not None:
            if strict and example.messages is not None:
                return False
            format_code = _CONTENTS
            if example.system_instruction is not None and example.systemInstruction is None:
                example.systemInstruction, example.system_instruction = example.system_instruction, None
            system = example.systemInstruction
            parts = [part for content in contents for part in content.parts]
            if system is not None:
                parts[:0] = system.parts
            texts = [part.text for part in parts]
            if None in texts:  # some parts carry no text
                for part in parts:
                    if part.text is None:
                        if not part.has_data():
                            return False  # only the fast path meets these: the walk drops them
                        non_text += 1
                texts = [text for text in texts if text is not None]
            roles = [content.role for content in contents]
        elif example.messages is not None:
            format_code = _MESSAGES
            roles = [message.role for message in example.messages]
            texts = [message.content for message in example.messages]
            if roles and roles[0] == "system":
                del roles[0]
            if strict and "system" in roles:
                return False
        else:
            return False
        chars = sum(map(len, texts))
        empty = texts.count("") + sum(map(str.isspace, texts))
        if empty:
            self.notes.add("empty_text", line, f"{empty} empty text(s)")
        if non_text:
            self.notes.add("non_text_parts", line, f"{non_text} non-text part(s)")
        last_role_model = bool(roles) and roles[-1] == "model"
        label = -1
        if self.with_label and last_role_model:
            if contents is not None:
                last_texts = [part.text for part in contents[-1].parts if part.text is not None]
            else:
                last_texts = texts[-1:]
            label = self.labels.setdefault("".join(last_texts).strip(), len(self.labels))
        # The hash covers the re-encoded example, not its spelling: the same example written with
        # other spacing, key order or extra fields is the same example.
        content_hash = xxhash.xxh3_64_intdigest(schema.encoder.encode(example))
        bad_roles, malformed = (problems.bad_roles, problems.malformed) if problems is not None else (0, 0)
        self.rows += _ROW.pack(
            line, offset, size, _OK, format_code, len(roles), roles.count("model"), bad_roles,
            last_role_model, empty, non_text, malformed, chars, content_hash, label,
        )  # fmt: skip
        if self.count_tokens is not None:
            self._count_later("\n".join(texts))
        return True

    def _count_later(self, text: str) -> None:
        self.pending_texts.append(text)
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
            rows=bytes(self.rows),
            token_counts=self.token_counts if self.count_tokens is not None else None,
            labels=list(self.labels),
            notes=dict(self.notes.by_rule),
            crlf_lines=self.crlf_lines,
            has_bom=self.has_bom,
        )

@dataclass
class _Part:
    """The columns of one byte range, picklable so that a worker process can send it back."""

    rows: bytes  # packed ROW_FIELDS records
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
            buffer = carry + chunk if carry else chunk
            line, offset, read = extractor.add_lines(buffer, line, offset, at_end=False)
            carry = buffer[read:]
            del buffer, chunk
    if carry:  # the last line of the file, without a final newline
        extractor.add_lines(carry, line, offset, at_end=True)
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


def _merge(path: Path, size: int, parts: list[_Part], with_label: bool, tokens_counted: bool) -> FeatureTable:
    import numpy as np
    import pandas as pd

    row_type = np.dtype([(name, "<" + code) for name, code in ROW_FIELDS])
    records = [np.frombuffer(part.rows, dtype=row_type) for part in parts]
    # Line numbers and notes are per range: shift them by the lines of the ranges before.
    line_bases = np.cumsum([0] + [len(r) for r in records[:-1]])
    notes: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for part, base in zip(parts, line_bases):
        for rule, found in part.notes.items():
            notes[rule].extend((line + int(base), message) for line, message in found)
    notes = {rule: found[:MAX_NOTES_PER_RULE] for rule, found in notes.items()}

    def column(name: str) -> np.ndarray:
        return np.concatenate([r[name] for r in records])

    lines = np.concatenate([r["line"] + base for r, base in zip(records, line_bases)]).astype(np.int32)
    chars = column("chars")
    if tokens_counted:
        tokens = np.concatenate([np.frombuffer(p.token_counts, dtype=np.int32) for p in parts])
    else:
        tokens = ((chars.astype(np.int64) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN).astype(np.int32)
    status, format_codes = column("status"), column("format")
    data = {
        "line": lines,
        "offset": column("offset"),
        "bytes": column("bytes"),
        "status": pd.Categorical.from_codes(status, categories=STATUSES),
        "format": pd.Categorical.from_codes(format_codes, categories=FORMATS),
        # A readable example: the per-example rules apply to these rows only.
        "parsed": (status == _OK) & ((format_codes == _CONTENTS) | (format_codes == _MESSAGES)),
        **{name: column(name) for name in ("turns", "model_turns", "bad_roles", "last_role_model", "empty_texts",
                                           "non_text_parts", "malformed")},  # fmt: skip
        "chars": chars,
        "tokens": tokens,
        "hash": column("hash"),
    }
    if with_label:
        # Each range numbered its labels itself: map them onto one list of categories.
        categories = list(dict.fromkeys(label for p in parts for label in p.labels))
        index = {label: code for code, label in enumerate(categories)}
        codes = []
        for part, rows in zip(parts, records):
            mapping = np.array([index[label] for label in part.labels] + [-1], dtype=np.int32)
            codes.append(mapping[rows["label"]])  # code -1 (no label) picks the final -1
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
        try:
            # spawn, not fork: the caller may be an Airflow task process with threads running.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(len(ranges), mp_context=context) as pool:
                futures = [pool.submit(_extract_range, str(path), a, b, with_label, tokenizer) for a, b in ranges]
                parts = [future.result() for future in futures]
        except BrokenProcessPool:
            # Workers cannot start where the main module cannot be re-imported (python - < script).
            log.warning("worker processes failed to start; reading %s in this process", path)
            parts = [_extract_range(str(path), 0, size, with_label, tokenizer)]
    return _merge(path, size, parts, with_label, tokens_counted=tokenizer is not None)
