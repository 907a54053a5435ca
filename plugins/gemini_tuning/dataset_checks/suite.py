"""The great-expectations suite over the feature frames, and its results as findings.

One expectation per rule, each tagged with the rule id in its ``meta``. The frame's ``line``
column is the index column GE reports unexpected rows by, so every failed expectation comes
back with its first offending line numbers. The context is ephemeral: nothing is written to
disk here. ``great_expectations`` takes seconds to import, so it is imported in the functions.
"""

from __future__ import annotations

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
_EXAMPLES_ONLY = {"row_condition": "parsed==True", "condition_parser": "pandas"}

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
    task: str | None = None  # classification, summarization, extractive_qa, chat or None


def add_cross_file_columns(train: FeatureTable, validation: FeatureTable | None, task: str | None) -> None:
    """Columns that need the whole file or both files: duplicates, leakage, class sizes."""
    import numpy as np

    for table in filter(None, (train, validation)):
        frame = table.frame
        first_line = frame["line"].where(frame["parsed"]).groupby(frame["hash"].where(frame["parsed"])).transform("first")
        frame["duplicate_of"] = np.where(first_line.notna() & (first_line != frame["line"]), first_line, 0).astype(np.int32)
    if validation is not None:
        train_frame, frame = train.frame, validation.frame
        parsed_train = train_frame[train_frame["parsed"]]
        training_line = parsed_train.drop_duplicates("hash").set_index("hash")["line"]
        matched = frame["hash"].map(training_line).where(frame["parsed"])
        frame["in_training"] = matched.fillna(0).astype(np.int32)
    if task == "classification":
        frame = train.frame
        codes = frame["label"].cat.codes.to_numpy()
        sizes = np.bincount(codes[codes >= 0], minlength=len(frame["label"].cat.categories))
        frame["label_count"] = np.where(codes >= 0, sizes[np.maximum(codes, 0)], np.nan).astype(np.float32)


def _expectations(table: FeatureTable, role: str, options: SuiteOptions) -> list:
    """The suite for one file; role is "training" or "validation"."""
    import great_expectations.expectations as gxe

    def tagged(rule: str, expectation):
        expectation.meta = {"rule": rule}
        return expectation

    frame = table.frame
    errors = ["invalid_utf8", "invalid_json", "not_object"]
    non_text_rule = "non_text_parts" if options.backend == Backend.LOCAL else "non_text_parts_vertex"
    found = [
        tagged("json_line", gxe.ExpectColumnValuesToNotBeInSet(column="status", value_set=errors)),
        tagged("blank_line", gxe.ExpectColumnValuesToNotBeInSet(column="status", value_set=["blank"])),
        tagged("known_format", gxe.ExpectColumnValuesToBeInSet(
            column="format", value_set=["contents", "messages"], row_condition='status=="ok"', condition_parser="pandas")),
        tagged("single_format", gxe.ExpectColumnValuesToBeInSet(column="format", value_set=[table.format], **_EXAMPLES_ONLY)),
        tagged("structure", gxe.ExpectColumnValuesToBeBetween(column="malformed", max_value=0, **_EXAMPLES_ONLY)),
        tagged("roles", gxe.ExpectColumnValuesToBeBetween(column="bad_roles", max_value=0, **_EXAMPLES_ONLY)),
        tagged("model_turn", gxe.ExpectColumnValuesToBeBetween(column="model_turns", min_value=1, **_EXAMPLES_ONLY)),
        tagged("last_turn_model", gxe.ExpectColumnValuesToBeInSet(column="last_role_model", value_set=[True], **_EXAMPLES_ONLY)),
        tagged("empty_text", gxe.ExpectColumnValuesToBeBetween(column="empty_texts", max_value=0, **_EXAMPLES_ONLY)),
        tagged(non_text_rule, gxe.ExpectColumnValuesToBeBetween(column="non_text_parts", max_value=0, **_EXAMPLES_ONLY)),
        tagged("example_tokens", gxe.ExpectColumnValuesToBeBetween(
            column="tokens", max_value=MAX_TOKENS_PER_EXAMPLE, **_EXAMPLES_ONLY)),
        tagged("file_size", gxe.ExpectColumnSumToBeBetween(column="bytes", max_value=MAX_FILE_BYTES)),
        tagged("example_count", gxe.ExpectTableRowCountToBeBetween(max_value=MAX_EXAMPLES)),
        tagged("duplicates", gxe.ExpectColumnValuesToBeInSet(column="duplicate_of", value_set=[0], **_EXAMPLES_ONLY)),
    ]  # fmt: skip
    if role == "validation":
        found += [
            tagged("validation_count", gxe.ExpectTableRowCountToBeBetween(max_value=MAX_VALIDATION_EXAMPLES)),
            tagged("leakage", gxe.ExpectColumnValuesToBeInSet(column="in_training", value_set=[0], **_EXAMPLES_ONLY)),
        ]
    elif options.task:
        found.append(tagged("few_examples", gxe.ExpectTableRowCountToBeBetween(min_value=MIN_EXAMPLES_FOR_TASK[options.task])))
    if role == "training" and options.task == "classification":
        largest = int(frame["label_count"].max()) if frame["label_count"].notna().any() else 0
        rare_below = max(1, int(largest * MIN_CLASS_SHARE_OF_LARGEST + 0.999))
        found += [
            tagged("label_classes", gxe.ExpectColumnUniqueValueCountToBeBetween(column="label", min_value=2)),
            tagged("label_balance", gxe.ExpectColumnValuesToBeBetween(column="label_count", min_value=rare_below)),
            tagged("label_examples", gxe.ExpectColumnValuesToBeBetween(column="label_count", min_value=MIN_EXAMPLES_PER_CLASS)),
        ]
    return found


def _ephemeral_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def run_suite(tables: dict[str, FeatureTable], options: SuiteOptions) -> tuple[list[Finding], dict[str, dict]]:
    """Validate each file's frame; return the findings and GE's raw results per role."""
    import great_expectations as gx

    context = _ephemeral_context()
    source = context.data_sources.add_pandas("tuning_dataset_features")
    findings: list[Finding] = []
    raw: dict[str, dict] = {}
    for role, table in tables.items():
        asset = source.add_dataframe_asset(role)
        batch = asset.add_batch_definition_whole_dataframe(role).get_batch(batch_parameters={"dataframe": table.frame})
        suite = gx.ExpectationSuite(name=f"tuning_dataset_{role}", expectations=_expectations(table, role, options))
        result = batch.validate(
            suite,
            result_format={
                "result_format": "SUMMARY",
                "unexpected_index_column_names": ["line"],
                "partial_unexpected_count": LINES_SHOWN,
            },
        )
        raw[role] = result.describe_dict()
        for outcome in result.results:
            if not outcome.success:
                findings.append(_finding(outcome, role, table))
    order = list(RULES)
    findings.sort(key=lambda f: (f.severity != "error", order.index(f.rule), f.role))
    return findings, raw


def _finding(outcome, role: str, table: FeatureTable) -> Finding:
    rule = RULES[outcome.expectation_config.meta["rule"]]
    if outcome.exception_info.get("raised_exception"):
        raise RuntimeError(f"expectation for rule {rule.id} failed to run: {outcome.exception_info}")
    result = outcome.result
    notes = dict(table.notes.get(rule.id.removesuffix("_vertex"), []))
    rows = sorted(result.get("partial_unexpected_index_list") or [], key=lambda row: int(row["line"]))
    lines, details = [], []
    for row in rows:
        line = int(row["line"])
        value = next((v for k, v in row.items() if k != "line"), None)
        describe = _DESCRIBE_VALUE.get(rule.id)
        lines.append(line)
        details.append(notes.get(line) or (describe(value) if describe else ""))
    count = int(result["unexpected_count"]) if "unexpected_count" in result else None
    observed = result.get("observed_value")
    return Finding(
        rule=rule.id,
        severity=rule.severity.value,
        title=rule.title,
        role=role,
        file=table.path,
        count=count,
        observed=_plain(observed),
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
