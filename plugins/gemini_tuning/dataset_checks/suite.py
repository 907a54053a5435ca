"""The great-expectations suite over the feature frames, and its results as findings.

One expectation per rule, each tagged with the rule id in its ``meta``, over two frames per
file (its lines, its examples) indexed by line number, so every failed expectation comes back
with its first offending line numbers. The context is ephemeral: nothing is written to disk
here. ``great_expectations`` takes seconds to import, so it is imported in the functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from gemini_tuning.dataset_checks.report import Finding
from gemini_tuning.dataset_checks.rules import (
    MAX_EXAMPLES,
    MAX_FILE_BYTES,
    MAX_TOKENS_PER_EXAMPLE,
    MAX_VALIDATION_EXAMPLES,
    MIN_CLASS_SHARE_OF_LARGEST,
    MIN_EXAMPLES_FOR_TASK,
    MIN_EXAMPLES_PER_CLASS,
    RULES,
    Backend,
)

if TYPE_CHECKING:
    import pandas as pd

    from gemini_tuning.dataset_checks.features import FeatureTable

LINES_SHOWN = 10
RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": LINES_SHOWN,
    "return_unexpected_index_query": False,
}

# How a failing row's value reads in the report, per rule (when the pass left no note for it).
_DESCRIBE_VALUE: dict[str, Callable[[Any], str]] = {
    "model_turn": lambda value: "no model turn",
    "last_turn_model": lambda value: "the last turn is not the model's",
    "single_format": lambda value: f"format {value!r}",
    "example_tokens": lambda value: f"{int(value):,} tokens",
    "duplicates": lambda value: f"same as line {int(value)}",
    "leakage": lambda value: f"same as line {int(value)} of the training file",
    "label_balance": lambda value: f"its class has {int(value)} examples",
    "label_examples": lambda value: f"its class has {int(value)} examples",
}


@dataclass(frozen=True)
class SuiteOptions:
    backend: Backend = Backend.VERTEX
    task: str | None = None  # classification, summarization, extractive_qa or chat or None


@dataclass
class Batches:
    """The two frames GE validates per file, both indexed by line number.

    ``lines``: every line (status, format, end) for the line-level and file-size rules;
    ``examples``: the readable examples only, with the cross-file columns, for the rest.
    The index is left unnamed on purpose: GE then reports unexpected rows by index in a
    vectorised way (a named index column makes it walk every unexpected row in Python), and
    numeric columns are int64/float64, the dtypes GE's between-checks vectorise.
    """

    lines: pd.DataFrame
    examples: pd.DataFrame


_NUMERIC = ("turns", "model_turns", "bad_roles", "empty_texts", "non_text_parts", "malformed", "chars", "tokens")


def _batches(table: FeatureTable) -> Batches:
    import numpy as np
    import pandas as pd

    frame = table.frame
    index = pd.Index(frame["line"].to_numpy())
    # "end": where each line ends in the file; the largest is the file's size.
    end = frame["offset"].to_numpy(np.int64) + frame["bytes"].to_numpy(np.int64)
    lines = pd.DataFrame({"status": frame["status"].array, "format": frame["format"].array, "end": end}, index=index)
    parsed = frame["parsed"].to_numpy()
    examples = pd.DataFrame(
        {
            "line": frame["line"].to_numpy()[parsed],
            "format": frame["format"].array[parsed],
            "last_role_model": frame["last_role_model"].to_numpy()[parsed],
            "hash": frame["hash"].to_numpy()[parsed],
            **{name: frame[name].to_numpy(np.int64)[parsed] for name in _NUMERIC},
        },
        index=index[parsed],
    )
    if "label" in frame:
        examples["label"] = frame["label"].array[parsed]  # stays categorical: codes, not strings
    return Batches(lines=lines, examples=examples)


def feature_batches(train: FeatureTable, validation: FeatureTable | None, task: str | None) -> dict[str, Batches]:
    """Per role, the frames to validate, with what needs a whole file or both: duplicates, leakage, class sizes."""
    import numpy as np
    import pandas as pd

    batches = {"training": _batches(train)}
    if validation is not None:
        batches["validation"] = _batches(validation)
    for batch in batches.values():
        # A hash table, not a sort or a group-by: each repeat points at the first line with its hash.
        hashes, lines = batch.examples["hash"].to_numpy(), batch.examples["line"].to_numpy(np.int64)
        repeat = pd.Series(hashes).duplicated().to_numpy()
        duplicate_of = np.zeros(len(hashes), np.int64)
        duplicate_of[repeat] = lines[~repeat][pd.Index(hashes[~repeat]).get_indexer(hashes[repeat])]
        batch.examples["duplicate_of"] = duplicate_of
    if validation is not None:
        training = batches["training"].examples
        training_line = pd.Series(training["line"].to_numpy(), index=training["hash"].to_numpy())
        training_line = training_line[~training_line.index.duplicated()]
        examples = batches["validation"].examples
        examples["in_training"] = examples["hash"].map(training_line).fillna(0).astype(np.int64)
    if task == "classification":
        examples = batches["training"].examples
        codes = examples["label"].cat.codes.to_numpy()
        sizes = np.bincount(codes[codes >= 0], minlength=len(examples["label"].cat.categories)).astype(np.float64)
        examples["label_count"] = np.where(codes >= 0, sizes[codes], np.nan)  # NaN (no label): GE skips it
    return batches


def _expectations(table: FeatureTable, batches: Batches, role: str, options: SuiteOptions) -> tuple[list, list]:
    """The suites for one file: (on its lines, on its examples); role is "training" or "validation"."""
    import great_expectations.expectations as gxe

    def tagged(rule: str, expectation):
        expectation.meta = {"rule": rule}
        return expectation

    errors = ["invalid_utf8", "invalid_json", "not_object"]
    on_lines = [
        tagged("json_line", gxe.ExpectColumnValuesToNotBeInSet(column="status", value_set=errors)),
        tagged("blank_line", gxe.ExpectColumnValuesToNotBeInSet(column="status", value_set=["blank"])),
        tagged("known_format", gxe.ExpectColumnValuesToNotBeInSet(column="format", value_set=["unknown"])),
        # The largest line end, not the sum of line sizes: a sum makes GE test every value for Decimal in Python.
        tagged("file_size", gxe.ExpectColumnMaxToBeBetween(column="end", max_value=MAX_FILE_BYTES)),
    ]
    non_text_rule = "non_text_parts" if options.backend == Backend.LOCAL else "non_text_parts_vertex"
    on_examples = [
        tagged("single_format", gxe.ExpectColumnValuesToBeInSet(column="format", value_set=[table.format])),
        tagged("structure", gxe.ExpectColumnValuesToBeInSet(column="malformed", value_set=[0])),
        tagged("roles", gxe.ExpectColumnValuesToBeInSet(column="bad_roles", value_set=[0])),
        tagged("model_turn", gxe.ExpectColumnValuesToNotBeInSet(column="model_turns", value_set=[0])),
        tagged("last_turn_model", gxe.ExpectColumnValuesToBeInSet(column="last_role_model", value_set=[True])),
        tagged("empty_text", gxe.ExpectColumnValuesToBeInSet(column="empty_texts", value_set=[0])),
        tagged(non_text_rule, gxe.ExpectColumnValuesToBeInSet(column="non_text_parts", value_set=[0])),
        tagged("example_tokens", gxe.ExpectColumnValuesToBeBetween(column="tokens", max_value=MAX_TOKENS_PER_EXAMPLE)),
        tagged("no_examples", gxe.ExpectTableRowCountToBeBetween(min_value=1)),
        tagged("example_count", gxe.ExpectTableRowCountToBeBetween(max_value=MAX_EXAMPLES)),
        tagged("duplicates", gxe.ExpectColumnValuesToBeInSet(column="duplicate_of", value_set=[0])),
    ]
    if role == "validation":
        on_examples += [
            tagged("validation_count", gxe.ExpectTableRowCountToBeBetween(max_value=MAX_VALIDATION_EXAMPLES)),
            tagged("leakage", gxe.ExpectColumnValuesToBeInSet(column="in_training", value_set=[0])),
        ]
    elif options.task:
        minimum = MIN_EXAMPLES_FOR_TASK[options.task]
        on_examples.append(tagged("few_examples", gxe.ExpectTableRowCountToBeBetween(min_value=minimum)))
    if role == "training" and options.task == "classification":
        counts = batches.examples["label_count"]
        largest = int(counts.max()) if counts.notna().any() else 0
        rare_below = max(1, math.ceil(largest * MIN_CLASS_SHARE_OF_LARGEST))
        on_examples += [
            tagged("label_classes", gxe.ExpectColumnUniqueValueCountToBeBetween(column="label", min_value=2)),
            tagged("label_balance", gxe.ExpectColumnValuesToBeBetween(column="label_count", min_value=rare_below)),
            tagged("label_examples", gxe.ExpectColumnValuesToBeBetween(
                column="label_count", min_value=MIN_EXAMPLES_PER_CLASS)),
        ]  # fmt: skip
    return on_lines, on_examples


def _ephemeral_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def run_suite(tables: dict[str, FeatureTable], options: SuiteOptions) -> tuple[list[Finding], dict[str, Any]]:
    """Validate each file's frames; return the findings and GE's results per role and batch."""
    import great_expectations as gx

    batches = feature_batches(tables["training"], tables.get("validation"), options.task)
    context = _ephemeral_context()
    source = context.data_sources.add_pandas("tuning_dataset_features")
    findings: list[Finding] = []
    raw: dict[str, dict] = {}
    for role, table in tables.items():
        suites = _expectations(table, batches[role], role, options)
        frames = (batches[role].lines, batches[role].examples)
        for kind, frame, expectations in zip(("lines", "examples"), frames, suites):
            name = f"{role}_{kind}"
            batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name).get_batch(
                batch_parameters={"dataframe": frame}
            )
            suite = gx.ExpectationSuite(name=f"tuning_dataset_{name}", expectations=expectations)
            result = batch.validate(suite, result_format=RESULT_FORMAT)
            raw[name] = result
            findings.extend(_finding(outcome, role, table) for outcome in result.results if not outcome.success)
    order = list(RULES)
    findings.sort(key=lambda f: (f.severity != "error", order.index(f.rule), f.role))
    return findings, raw


def data_docs(results: dict[str, Any]) -> dict[str, str]:
    """GE's own Data Docs page (its renderer and page view) for each batch's validation result."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    renderer, view = ValidationResultsPageRenderer(), DefaultJinjaPageView()
    return {name: view.render(renderer.render(result)) for name, result in results.items()}


def _finding(outcome, role: str, table: FeatureTable) -> Finding:
    rule = RULES[outcome.expectation_config.meta["rule"]]
    if outcome.exception_info.get("raised_exception"):
        raise RuntimeError(f"expectation for rule {rule.id} failed to run: {outcome.exception_info}")
    result = outcome.result
    notes = dict(table.notes.get(rule.id.removesuffix("_vertex"), []))
    describe = _DESCRIBE_VALUE.get(rule.id)
    # The index is the line number; values come in the same (file) order as the indices.
    lines = [int(line) for line in result.get("partial_unexpected_index_list") or []]
    values = result.get("partial_unexpected_list") or [None] * len(lines)
    details = [notes.get(line) or (describe(value) if describe else "") for line, value in zip(lines, values)]
    return Finding(
        rule=rule.id,
        severity=rule.severity.value,
        title=rule.title,
        role=role,
        file=table.path,
        count=int(result["unexpected_count"]) if "unexpected_count" in result else None,
        observed=_plain(result.get("observed_value")),
        lines=lines,
        details=details,
    )


def _plain(value):
    """GE hands back numpy scalars: make them JSON (XCom) friendly."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)
