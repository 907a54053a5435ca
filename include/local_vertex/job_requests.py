"""The tuningJobs.create body: accepted in camelCase or snake_case, validated, made a resource.

Google's JSON parsers accept both spellings of every field (the original documentation's curl
example sends `training_dataset_uri`, `hyper_parameters`, `epoch_count`), so keys are turned
into camelCase first; label keys are the user's data and are left as written.
"""

from __future__ import annotations

import math
import re

from include.local_vertex.errors import invalid_argument
from include.tuning_engine.recommended import ADAPTER_SIZES
MAX_EPOCHS = 100

_CREATE_FIELDS = {"baseModel", "tunedModelDisplayName", "description", "labels", "supervisedTuningSpec"}
_SPEC_FIELDS = {"trainingDatasetUri", "validationDatasetUri", "hyperParameters", "exportLastCheckpointOnly"}
_HYPER_FIELDS = {"epochCount", "adapterSize", "learningRateMultiplier"}
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


def camel_keys(value, opaque: frozenset[str] = frozenset({"labels"})):
    """A copy of `value` with every dict key in camelCase, except inside the `opaque` maps."""
    if isinstance(value, list):
        return [camel_keys(item, opaque) for item in value]
    if not isinstance(value, dict):
        return value
    converted = {}
    for key, item in value.items():
        camel = _camel(key)
        converted[camel] = item if camel in opaque else camel_keys(item, opaque)
    return converted


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def parse_create_request(body) -> dict:
    """The validated request in camelCase; ApiError(400) naming the offending field otherwise."""
    if not isinstance(body, dict):
        raise invalid_argument("the request body must be a JSON object (a TuningJob)")
    body = camel_keys(body)
    if "preTunedModel" in body:
        raise invalid_argument("preTunedModel (continuous tuning) is not supported by the local service")
    _reject_unknown(body, _CREATE_FIELDS, "")
    base_model = body.get("baseModel")
    if not isinstance(base_model, str) or not base_model:
        raise invalid_argument("baseModel is required (for example \"gemini-2.5-flash\")")
    for text_field in ("tunedModelDisplayName", "description"):
        if text_field in body and not isinstance(body[text_field], str):
            raise invalid_argument(f"{text_field} must be a string")
    labels = _labels(body.get("labels", {}))
    spec = body.get("supervisedTuningSpec")
    if not isinstance(spec, dict):
        raise invalid_argument("supervisedTuningSpec is required (with trainingDatasetUri)")
    _reject_unknown(spec, _SPEC_FIELDS, "supervisedTuningSpec.")
    for uri_field in ("trainingDatasetUri", "validationDatasetUri"):
        if uri_field in spec and not isinstance(spec[uri_field], str):
            raise invalid_argument(f"supervisedTuningSpec.{uri_field} must be a string URI")
    if not spec.get("trainingDatasetUri"):
        raise invalid_argument("supervisedTuningSpec.trainingDatasetUri is required")
    hyper = spec.get("hyperParameters", {})
    if not isinstance(hyper, dict):
        raise invalid_argument("supervisedTuningSpec.hyperParameters must be an object")
    _reject_unknown(hyper, _HYPER_FIELDS, "supervisedTuningSpec.hyperParameters.")
    request = {
        "baseModel": base_model,
        "labels": labels,
        "supervisedTuningSpec": {
            "trainingDatasetUri": spec["trainingDatasetUri"],
            "hyperParameters": parse_hyperparameters(hyper),
        },
    }
    if spec.get("validationDatasetUri"):
        request["supervisedTuningSpec"]["validationDatasetUri"] = spec["validationDatasetUri"]
    for text_field in ("tunedModelDisplayName", "description"):
        if body.get(text_field):
            request[text_field] = body[text_field]
    return request


def parse_hyperparameters(hyper: dict) -> dict:
    """Only the values the client set, in Vertex's JSON types (int64 epochCount as a string)."""
    where = "supervisedTuningSpec.hyperParameters."
    parsed: dict = {}
    if hyper.get("epochCount") not in (None, "", 0, "0"):
        epochs = hyper["epochCount"]
        try:
            count = int(epochs)
            if isinstance(epochs, float) and epochs != count:
                raise ValueError
        except (TypeError, ValueError):
            raise invalid_argument(f"{where}epochCount must be a whole number, got {epochs!r}") from None
        if not 1 <= count <= MAX_EPOCHS:
            raise invalid_argument(f"{where}epochCount must be between 1 and {MAX_EPOCHS}, got {count}")
        parsed["epochCount"] = str(count)
    size = hyper.get("adapterSize")
    if size not in (None, "", "ADAPTER_SIZE_UNSPECIFIED"):
        if size not in ADAPTER_SIZES:
            raise invalid_argument(
                f"{where}adapterSize must be one of {', '.join(ADAPTER_SIZES)}, got {size!r}"
            )
        parsed["adapterSize"] = size
    if hyper.get("learningRateMultiplier") not in (None, ""):
        raw = hyper["learningRateMultiplier"]
        try:
            multiplier = float(raw)
        except (TypeError, ValueError):
            raise invalid_argument(f"{where}learningRateMultiplier must be a number, got {raw!r}") from None
        if isinstance(raw, bool) or not math.isfinite(multiplier) or not 0 < multiplier <= 100:
            raise invalid_argument(f"{where}learningRateMultiplier must be > 0 and <= 100, got {raw!r}")
        parsed["learningRateMultiplier"] = multiplier
    return parsed


def _labels(labels) -> dict:
    if not isinstance(labels, dict):
        raise invalid_argument("labels must be an object of string keys and values")
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            raise invalid_argument(
                f"labels: key {key!r} must start with a lowercase letter and hold at most 63 "
                "lowercase letters, digits, '_' or '-'"
            )
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            raise invalid_argument(
                f"labels.{key}: value {value!r} must hold at most 63 lowercase letters, digits, '_' or '-'"
            )
    return dict(labels)


def _reject_unknown(body: dict, known: set[str], prefix: str) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise invalid_argument(
            f"Invalid JSON payload received. Unknown name \"{prefix}{unknown[0]}\": "
            f"the local service accepts {', '.join(sorted(prefix + k for k in known))}"
        )
