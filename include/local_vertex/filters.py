"""The `filter` of tuningJobs.list, in the AIP-160 syntax that Vertex uses.

Supported: `state="JOB_STATE_RUNNING"`, `labels.team="nlp"`, `labels.team:*` (has the label),
`display_name`, `base_model`, `create_time` / `update_time` with < <= > >= against RFC 3339
times, `!=`, `NOT`/`-`, `AND`, `OR` (which binds tighter than AND, as in AIP-160) and
parentheses. Values may be quoted or bare.
"""

from __future__ import annotations

import re
from typing import Callable

from include.local_vertex.errors import invalid_argument
from include.local_vertex.timefmt import parse_rfc3339

Predicate = Callable[[dict], bool]
MAX_DEPTH = 32  # parentheses and NOTs nested deeper are refused, not recursed into
MAX_LENGTH = 4096

_TOKEN = re.compile(
    r'\s*(?:(?P<paren>[()])|(?P<op><=|>=|!=|=|:|<|>)|"(?P<quoted>(?:[^"\\]|\\.)*)"'
    r"|(?P<word>[A-Za-z0-9_.*@/+\-]+))"
)
_TEXT_FIELDS = {
    "state": ("state",),
    "display_name": ("tunedModelDisplayName",),
    "tuned_model_display_name": ("tunedModelDisplayName",),
    "base_model": ("baseModel",),
}
_TIME_FIELDS = {"create_time": "createTime", "update_time": "updateTime", "start_time": "startTime",
                "end_time": "endTime"}
_ALIASES = {"displayName": "display_name", "tunedModelDisplayName": "tuned_model_display_name",
            "baseModel": "base_model", "createTime": "create_time", "updateTime": "update_time",
            "startTime": "start_time", "endTime": "end_time"}


def compile_filter(text: str | None) -> Predicate:
    """A predicate over TuningJob resources; ApiError(400) saying where the filter is wrong."""
    if not text or not text.strip():
        return lambda job: True
    if len(text) > MAX_LENGTH:
        raise invalid_argument(f"the filter is {len(text)} characters long; at most {MAX_LENGTH} are accepted")
    parser = _Parser(text)
    predicate = parser.expression()
    if parser.peek() is not None:
        raise parser.error(f"unexpected {parser.peek()[1]!r}")
    return predicate


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if not match:
                raise invalid_argument(f"invalid filter {text!r}: cannot read it at position {pos}")
            kind = match.lastgroup
            value = match.group(kind)
            if kind == "quoted":
                value = re.sub(r"\\(.)", r"\1", value)
            self.tokens.append((kind, value))
            pos = match.end()
        self.pos = 0
        self.depth = 0

    def error(self, message: str):
        return invalid_argument(f"invalid filter {self.text!r}: {message}")

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self):
        token = self.peek()
        if token is None:
            raise self.error("it ends too early")
        self.pos += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self.peek()
        if token == ("word", word):
            self.pos += 1
            return True
        return False

    def expression(self) -> Predicate:
        parts = [self.disjunction()]
        while self._keyword("AND") or self._starts_term():  # AIP-160: juxtaposition means AND
            parts.append(self.disjunction())
        return parts[0] if len(parts) == 1 else (lambda job: all(p(job) for p in parts))

    def _starts_term(self) -> bool:
        token = self.peek()
        return token is not None and (token == ("paren", "(") or (token[0] == "word" and token[1] not in ("OR", ")")))

    def disjunction(self) -> Predicate:
        parts = [self.factor()]
        while self._keyword("OR"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else (lambda job: any(p(job) for p in parts))

    def factor(self) -> Predicate:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise self.error(f"it nests parentheses or NOT more than {MAX_DEPTH} deep")
            return self._factor()
        finally:
            self.depth -= 1

    def _factor(self) -> Predicate:
        token = self.peek()
        if self._keyword("NOT") or (token and token[0] == "word" and token[1] == "-" and self.take()):
            inner = self.factor()
            return lambda job: not inner(job)
        if token == ("paren", "("):
            self.take()
            inner = self.expression()
            if self.take() != ("paren", ")"):
                raise self.error("a '(' is not closed")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        kind, field = self.take()
        if kind != "word":
            raise self.error(f"expected a field name, got {field!r}")
        if field.startswith("-") and field.strip("-"):  # "-labels.x:*" is NOT labels.x:*
            negations = len(field) - len(field.lstrip("-"))
            self.pos -= 1
            self.tokens[self.pos] = ("word", field.lstrip("-"))
            inner = self.comparison()
            return (lambda job: not inner(job)) if negations % 2 else inner
        op_kind, op = self.take()
        if op_kind != "op":
            raise self.error(f"expected an operator after {field!r}, got {op!r}")
        value_kind, value = self.take()
        if value_kind not in ("quoted", "word"):
            raise self.error(f"expected a value after {field!r} {op}")
        return _comparison(_ALIASES.get(field, field), op, value, self)


def _comparison(field: str, op: str, value: str, parser: _Parser) -> Predicate:
    if field.startswith("labels."):
        key = field[len("labels."):]
        if op == ":" and value == "*":
            return lambda job: key in (job.get("labels") or {})
        return _text_test(lambda job: (job.get("labels") or {}).get(key), op, value, parser, field)
    if field in _TEXT_FIELDS:
        (resource_key,) = _TEXT_FIELDS[field]
        return _text_test(lambda job: job.get(resource_key), op, value, parser, field)
    if field in _TIME_FIELDS:
        resource_key = _TIME_FIELDS[field]
        try:
            moment = parse_rfc3339(value)
        except ValueError:
            raise parser.error(f"{field} needs an RFC 3339 time, got {value!r}") from None
        compare = {"<": lambda a: a < moment, "<=": lambda a: a <= moment, ">": lambda a: a > moment,
                   ">=": lambda a: a >= moment, "=": lambda a: a == moment, "!=": lambda a: a != moment}
        if op not in compare:
            raise parser.error(f"{field} does not support {op!r}")
        test = compare[op]
        return lambda job: bool(job.get(resource_key)) and test(parse_rfc3339(job[resource_key]))
    raise parser.error(
        f"unknown field {field!r} (supported: state, labels.KEY, display_name, base_model, "
        "create_time, update_time, start_time, end_time)"
    )


def _text_test(getter, op: str, value: str, parser: _Parser, field: str) -> Predicate:
    if op == "=" or op == ":":
        if op == ":" and value == "*":
            return lambda job: getter(job) not in (None, "")
        return lambda job: getter(job) == value
    if op == "!=":
        return lambda job: getter(job) != value
    raise parser.error(f"{field} does not support {op!r}")
