"""The validation report: findings with their lines, file summaries, as text, dict and HTML.

The dict form is what the Airflow operator returns to XCom (plain JSON types only): the
recommendation step reads its warnings and the file summaries (example counts, classes).
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Finding:
    """One failed rule in one file."""

    rule: str
    severity: str  # "error" or "warning"
    title: str
    role: str  # "training" or "validation"
    file: str
    count: int | None = None  # offending examples, for per-example rules
    observed: object = None  # the measured value, for file-level rules (row count, bytes...)
    lines: list[int] = field(default_factory=list)  # the first offending line numbers
    details: list[str] = field(default_factory=list)  # what is wrong on each of those lines

    @property
    def message(self) -> str:
        where = f"{self.severity.upper()} [{self.rule}] {self.role} file {Path(self.file).name}"
        if self.count is None:
            found = f" (found {self.observed:,})" if isinstance(self.observed, (int, float)) else ""
            return f"{where}: {self.title}{found}"
        shown = ", ".join(
            f"line {line}" + (f" ({detail})" if detail else "") for line, detail in zip(self.lines, self.details)
        )
        more = f", ... {self.count - len(self.lines):,} more" if self.count > len(self.lines) else ""
        noun = "line" if self.count == 1 else "lines"
        return f"{where}: {self.title}: {self.count:,} {noun}: {shown}{more}"


@dataclass
class FileSummary:
    role: str
    file: str
    size_bytes: int
    lines: int
    examples: int  # lines that are readable examples
    format: str
    tokens_counted: bool  # counted with a tokenizer, else estimated from characters
    total_tokens: int
    max_tokens: int
    mean_tokens: float
    total_characters: int
    mean_turns: float
    crlf_lines: int  # Windows line ends: read fine, reported for information
    class_count: int | None = None  # classification: the number of distinct labels
    classes: dict[str, int] | None = None  # classification: examples per label, the largest 50
    sha256: str | None = None  # of the bytes validated: the upload refuses any other bytes


@dataclass
class ValidationReport:
    files: list[FileSummary]
    findings: list[Finding]
    backend: str
    task: str | None
    html_path: str | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def error_count(self) -> int:
        return len(self.errors)

    @property
    def warning_count(self) -> int:
        return len(self.warnings)

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {
            "valid": self.valid,
            "backend": self.backend,
            "task": self.task,
            "files": [asdict(f) for f in self.files],
            "errors": [asdict(f) | {"message": f.message} for f in self.errors],
            "warnings": [asdict(f) | {"message": f.message} for f in self.warnings],
            "html_path": self.html_path,
        }

    def headline(self) -> str:
        verdict = "VALID" if self.valid else "INVALID"
        return f"Dataset {verdict}: {self.error_count} error(s), {self.warning_count} warning(s)"

    def to_text(self) -> str:
        out = [self.headline()]
        for summary in self.files:
            tokens = "counted" if summary.tokens_counted else "estimated"
            out.append(
                f"  {summary.role}: {summary.file}: {summary.examples:,} examples in {summary.lines:,} lines, "
                f"{summary.size_bytes / 1e6:.1f} MB, format {summary.format}; tokens ({tokens}) "
                f"max {summary.max_tokens:,}, mean {summary.mean_tokens:,.0f}, total {summary.total_tokens:,}"
            )
            if summary.crlf_lines:
                out.append(f"    {summary.crlf_lines:,} line(s) end with CRLF (Windows): read as plain line ends")
            if summary.classes is not None:
                shown = ", ".join(f"{_short(label)!r}: {n:,}" for label, n in list(summary.classes.items())[:10])
                more = ", ..." if summary.class_count > 10 else ""
                out.append(f"    {summary.class_count:,} classes: {shown}{more}")
        out.extend(finding.message for finding in self.findings)
        if self.html_path:
            out.append(f"HTML report: {self.html_path}")
        return "\n".join(out)

    def html(self) -> str:
        """The report as a standalone HTML page."""
        return _html(self)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.error{color:#b00020;font-weight:bold}.warning{color:#a15c00;font-weight:bold}.valid{color:#1b5e20}
"""


def _html(report: ValidationReport) -> str:
    e = html.escape
    verdict_class = "valid" if report.valid else "error"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Tuning dataset validation</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1 class='{verdict_class}'>{e(report.headline())}</h1>",
        f"<p>Backend: {e(report.backend)}; task: {e(report.task or 'not given')}</p>",
        "<h2>Files</h2><table><tr><th>role</th><th>file</th><th>examples</th><th>lines</th><th>MB</th>"
        "<th>format</th><th>tokens max / mean / total</th><th>mean turns</th></tr>",
    ]
    for s in report.files:
        tokens = f"{s.max_tokens:,} / {s.mean_tokens:,.0f} / {s.total_tokens:,}"
        tokens += "" if s.tokens_counted else " (estimated)"
        parts.append(
            f"<tr><td>{e(s.role)}</td><td>{e(s.file)}</td><td>{s.examples:,}</td><td>{s.lines:,}</td>"
            f"<td>{s.size_bytes / 1e6:.1f}</td><td>{e(s.format)}</td><td>{e(tokens)}</td>"
            f"<td>{s.mean_turns:.1f}</td></tr>"
        )
    parts.append("</table>")
    if report.findings:
        parts.append("<h2>Findings</h2><table><tr><th>severity</th><th>rule</th><th>file</th><th>what</th>"
                     "<th>how many</th><th>first lines</th></tr>")  # fmt: skip
        for f in report.findings:
            lines = "<br>".join(
                f"line {line}" + (f": {e(detail)}" if detail else "") for line, detail in zip(f.lines, f.details)
            )
            how_many = f"{f.count:,}" if f.count is not None else e(f"found {f.observed}")
            parts.append(
                f"<tr><td class='{e(f.severity)}'>{e(f.severity)}</td><td>{e(f.rule)}</td><td>{e(Path(f.file).name)}"
                f" ({e(f.role)})</td><td>{e(f.title)}</td><td>{how_many}</td><td>{lines}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p class='valid'>Every rule passed.</p>")
    for s in report.files:
        if s.classes:
            parts.append(f"<h2>Classes in {e(Path(s.file).name)} ({s.class_count:,}, the largest shown)</h2>"
                         "<table><tr><th>label</th><th>examples</th></tr>")  # fmt: skip
            parts.extend(f"<tr><td>{e(label)}</td><td>{n:,}</td></tr>" for label, n in s.classes.items())
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
