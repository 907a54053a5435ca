"""The rules a tuning dataset is held to: Vertex AI's limits and our data-quality checks.

Each rule has an id (used in feature notes, expectation metadata and the report), a severity
and a sentence a user understands. Errors stop the pipeline; warnings are reported and passed
on to the recommendation step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gemini_tuning.recommendations import MINIMUM_EXAMPLES


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


class Backend(str, Enum):
    """Where the dataset will be tuned: some rules depend on it."""

    VERTEX = "vertex"
    LOCAL = "local"


# Vertex AI supervised tuning limits for Gemini 2.x (Google's dataset guide for supervised tuning).
MAX_TOKENS_PER_EXAMPLE = 131_072
MAX_FILE_BYTES = 1_000_000_000
MAX_EXAMPLES = 1_000_000
MAX_VALIDATION_EXAMPLES = 5_000
CHARS_PER_TOKEN = 4  # Google's rule of thumb for Gemini tokenizers

# Minimum training examples recommended per task type: one table, the recommendation step's.
MIN_EXAMPLES_FOR_TASK = MINIMUM_EXAMPLES
# A class with fewer examples than this share of the largest class is "rare".
MIN_CLASS_SHARE_OF_LARGEST = 0.1
MIN_EXAMPLES_PER_CLASS = 10


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {rule.id: rule for rule in rules}


E, W = Severity.ERROR, Severity.WARNING
RULES = _rules(
    Rule("json_line", E, "each line must be one UTF-8 JSON object"),
    Rule("blank_line", W, "blank lines are skipped"),
    Rule("byte_order_mark", W, "the file starts with a UTF-8 byte order mark"),
    Rule("known_format", E, "an example needs 'contents' (Gemini) or 'messages' (legacy), not both"),
    Rule("single_format", E, "all examples of a file must use the same format"),
    Rule("structure", E, "turns and parts must have the documented shape"),
    Rule("roles", E, "roles are user or model; system only in systemInstruction or as the first legacy message"),
    Rule("model_turn", E, "an example needs at least one model turn"),
    Rule("last_turn_model", E, "the last turn of an example must be the model's"),
    Rule("empty_text", E, "text must not be empty"),
    Rule("non_text_parts", E, "parts other than text are not supported by the local backend"),
    Rule("non_text_parts_vertex", W, "parts other than text: accepted by Vertex AI, not by the local backend"),
    Rule("example_tokens", E, f"an example may have at most {MAX_TOKENS_PER_EXAMPLE:,} tokens"),
    Rule("file_size", E, f"a dataset file may be at most {MAX_FILE_BYTES:,} bytes"),
    Rule("no_examples", E, "a dataset file needs at least one example (it is empty or has only blank lines)"),
    Rule("example_count", E, f"a dataset may have at most {MAX_EXAMPLES:,} examples"),
    Rule("validation_count", E, f"a validation set may have at most {MAX_VALIDATION_EXAMPLES:,} examples"),
    Rule("duplicates", W, "exact duplicate examples"),
    Rule("leakage", E, "validation examples must not also be training examples"),
    Rule("label_classes", E, "classification needs at least two classes"),
    Rule("label_balance", W, "classes much rarer than the largest class (imbalance)"),
    Rule("label_examples", W, f"classes with fewer than {MIN_EXAMPLES_PER_CLASS} examples"),
    Rule("few_examples", W, "fewer training examples than recommended for the task"),
)
del E, W
