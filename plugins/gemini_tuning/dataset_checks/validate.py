"""Validate a training (and validation) JSONL dataset: the one call the CLI and operator make.

Streaming pass over each file -> feature frames -> cross-file columns (duplicates, leakage,
class sizes) -> great-expectations suite -> report (text, dict, and HTML when asked).
"""

from __future__ import annotations

import importlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gemini_tuning.dataset_checks.features import FeatureTable, extract_features
from gemini_tuning.dataset_checks.report import FileSummary, Finding, ValidationReport
from gemini_tuning.dataset_checks.rules import MAX_TOKENS_PER_EXAMPLE, MIN_EXAMPLES_FOR_TASK, RULES, Backend
from gemini_tuning.dataset_checks.source import readable_file, write_file
from gemini_tuning.dataset_checks.tokens import ExampleCounter, confirm_estimates_near_limit
from gemini_tuning.dataset_checks.upload import file_sha256

TASKS = tuple(MIN_EXAMPLES_FOR_TASK)
CLASSES_SHOWN = 50


def validate_dataset(
    training: str | Path,
    validation: str | Path | None = None,
    *,
    task: str | None = None,
    backend: str | Backend = Backend.VERTEX,
    tokenizer: str | Path | None = None,
    report_dir: str | Path | None = None,
    gcp_conn_id: str = "google_cloud_default",
    workers: int | None = None,
    count_tokens: ExampleCounter | None = None,
) -> ValidationReport:
    """Check the dataset as Vertex AI will (and more) and return the report.

    :param training: the training JSONL: a local path, file:// or gs:// URI.
    :param validation: the validation JSONL, optional, same forms.
    :param task: classification, summarization, extractive_qa or chat: enables the task's checks.
    :param backend: "vertex" or "local": the local backend refuses non-text parts.
    :param tokenizer: a tokenizer folder to count tokens with (the local model's); default: estimate.
    :param report_dir: write report.html, GE's raw results and GE's Data Docs (data_docs/<role>_<batch>.html)
        there: a path, file:// or gs:// URI.
    :param gcp_conn_id: the Airflow connection for gs:// inputs and report_dir.
    :param workers: processes for the streaming pass (default: automatic).
    :param count_tokens: counts one example's tokens with the backend (tokens.backend_example_counter);
        without a tokenizer, estimates near the per-example limit are confirmed with it.
    """
    from gemini_tuning.dataset_checks.suite import SuiteOptions, data_docs, run_suite

    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    options = SuiteOptions(backend=Backend(backend), task=task)
    # great_expectations takes seconds to import: do it while the streaming pass works.
    preload = threading.Thread(target=importlib.import_module, args=("great_expectations",), daemon=True)
    preload.start()
    inputs = {"training": training, "validation": validation}
    tables: dict[str, FeatureTable] = {}
    hashes: dict[str, str] = {}
    for role, uri in inputs.items():
        if uri is None:
            continue
        with readable_file(str(uri), gcp_conn_id=gcp_conn_id) as path, ThreadPoolExecutor(1) as hasher:
            # The upload checks it stores exactly these bytes. hashlib lets go of the GIL: the
            # digest is computed while the streaming pass reads the same (cached) bytes.
            sha256 = hasher.submit(file_sha256, path)
            tables[role] = extract_features(
                path,
                with_label=task == "classification",
                tokenizer=str(tokenizer) if tokenizer else None,
                workers=workers,
            )
            hashes[role] = sha256.result()
            tables[role].path = str(uri)
            if count_tokens is not None and not tables[role].tokens_counted:
                confirm_estimates_near_limit(tables[role], path, MAX_TOKENS_PER_EXAMPLE, count_tokens)
    preload.join()
    findings, results = run_suite(tables, options)
    findings += [_bom_finding(role, table) for role, table in tables.items() if table.has_bom]
    report = ValidationReport(
        files=[_summary(role, table, task, hashes[role]) for role, table in tables.items()],
        findings=findings,
        backend=options.backend.value,
        task=task,
    )
    if report_dir:
        folder = str(report_dir).rstrip("/")
        raw = json.dumps({name: r.describe_dict() for name, r in results.items()}, indent=1, default=str)
        write_file(f"{folder}/expectation_results.json", raw, content_type="application/json", gcp_conn_id=gcp_conn_id)
        for name, page in data_docs(results).items():
            write_file(f"{folder}/data_docs/{name}.html", page, content_type="text/html", gcp_conn_id=gcp_conn_id)
        report.html_path = write_file(
            f"{folder}/report.html", report.html(), content_type="text/html", gcp_conn_id=gcp_conn_id
        )
    return report


def _bom_finding(role: str, table: FeatureTable) -> Finding:
    """A byte order mark is a property of the file, not of an example: checked outside the suite."""
    rule = RULES["byte_order_mark"]
    return Finding(rule.id, rule.severity.value, rule.title, role, table.path, count=1, lines=[1],
                   details=["Vertex AI may not read it; save the file as UTF-8 without BOM"])  # fmt: skip


def _summary(role: str, table: FeatureTable, task: str | None, sha256: str) -> FileSummary:
    frame = table.frame
    examples = frame[frame["parsed"]]
    tokens = examples["tokens"]
    classes = class_count = None
    if task == "classification":
        counts = examples["label"].value_counts()
        counts = counts[counts > 0]
        class_count = len(counts)
        classes = {str(label): int(n) for label, n in counts.head(CLASSES_SHOWN).items()}
    return FileSummary(
        role=role,
        file=table.path,
        size_bytes=table.size_bytes,
        lines=len(frame),
        examples=len(examples),
        format=table.format,
        tokens_counted=table.tokens_counted,
        total_tokens=int(tokens.sum()),
        max_tokens=int(tokens.max()) if len(tokens) else 0,
        mean_tokens=round(float(tokens.mean()), 1) if len(tokens) else 0.0,
        total_characters=int(examples["chars"].sum()),
        mean_turns=round(float(examples["turns"].mean()), 2) if len(examples) else 0.0,
        crlf_lines=table.crlf_lines,
        class_count=class_count,
        classes=classes,
        sha256=sha256,
    )
