"""The tuningJobs.create body (already in canonical form, see wire.py): validated, made a resource.

Fields Vertex accepts and the local service can keep without acting on them (`serviceAccount`,
`encryptionSpec`) are kept and returned; fields it cannot honour (preference tuning, evaluation
during tuning) are refused with a 400 that says so. Continuous tuning names a `preTunedModel`
instead of a `baseModel`; the route resolves it to the model version it continues.
"""

from __future__ import annotations

import math
import re

from include.local_vertex.base_models import canonical_base_model
from include.local_vertex.errors import invalid_argument
from include.local_vertex.wire import fields_of
# The project's one table of tunable models. The service runs from the project root, where
# plugins/ is a folder but not always on the path (Airflow puts it there for itself).
from plugins.gemini_tuning.models import ADAPTER_SIZES, TuningRequestError, check_tuning_request

MAX_EPOCHS = 100

_CREATE_FIELDS = {"baseModel", "preTunedModel", "tunedModelDisplayName", "description", "labels",
                  "supervisedTuningSpec", "serviceAccount", "encryptionSpec"}
_SPEC_FIELDS = {"trainingDatasetUri", "validationDatasetUri", "hyperParameters", "exportLastCheckpointOnly"}
_HYPER_FIELDS = {"epochCount", "adapterSize", "learningRateMultiplier"}
_PRE_TUNED_FIELDS = {"tunedModelName", "checkpointId"}
_TUNED_MODEL_NAME = re.compile(r"^projects/([^/]+)/locations/([^/]+)/models/([^/@]+)(?:@([^/@]+))?$")
_NOT_HONOURED = {
    "preferenceOptimizationSpec": "preferenceOptimizationSpec (preference tuning)",
    "evaluationConfig": "supervisedTuningSpec.evaluationConfig (evaluation during tuning)",
}
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_SERVICE_ACCOUNT = re.compile(r"^[^@\s]+@[^@\s]+$")


def parse_create_request(body, location: str) -> dict:
    """The validated request; ApiError(400) naming the offending field otherwise."""
    if not isinstance(body, dict):
        raise invalid_argument("the request body must be a JSON object (a TuningJob)")
    _reject_unknown(body, _CREATE_FIELDS, "TuningJob", "")
    source = _source_model(body)
    for text_field in ("tunedModelDisplayName", "description", "serviceAccount"):
        if text_field in body and not isinstance(body[text_field], str):
            raise invalid_argument(f"{text_field} must be a string")
    labels = _labels(body.get("labels", {}))
    spec = body.get("supervisedTuningSpec")
    if not isinstance(spec, dict):
        raise invalid_argument("supervisedTuningSpec is required (with trainingDatasetUri)")
    _reject_unknown(spec, _SPEC_FIELDS, "SupervisedTuningSpec", "supervisedTuningSpec.")
    for uri_field in ("trainingDatasetUri", "validationDatasetUri"):
        if uri_field in spec and not isinstance(spec[uri_field], str):
            raise invalid_argument(f"supervisedTuningSpec.{uri_field} must be a string URI")
    if not spec.get("trainingDatasetUri"):
        raise invalid_argument("supervisedTuningSpec.trainingDatasetUri is required")
    hyper = spec.get("hyperParameters", {})
    if not isinstance(hyper, dict):
        raise invalid_argument("supervisedTuningSpec.hyperParameters must be an object")
    _reject_unknown(hyper, _HYPER_FIELDS, "SupervisedHyperParameters", "supervisedTuningSpec.hyperParameters.")
    hyperparameters = parse_hyperparameters(hyper)
    if "baseModel" in source:
        try:
            check_tuning_request(source["baseModel"], hyperparameters.get("adapterSize"), location)
        except TuningRequestError as exc:
            raise invalid_argument(str(exc)) from None
    request = {
        **source,
        "labels": labels,
        "supervisedTuningSpec": {
            "trainingDatasetUri": spec["trainingDatasetUri"],
            "hyperParameters": hyperparameters,
        },
    }
    if spec.get("validationDatasetUri"):
        request["supervisedTuningSpec"]["validationDatasetUri"] = spec["validationDatasetUri"]
    if "exportLastCheckpointOnly" in spec:
        if not isinstance(spec["exportLastCheckpointOnly"], bool):
            raise invalid_argument("supervisedTuningSpec.exportLastCheckpointOnly must be true or false")
        request["supervisedTuningSpec"]["exportLastCheckpointOnly"] = spec["exportLastCheckpointOnly"]
    for text_field in ("tunedModelDisplayName", "description"):
        if body.get(text_field):
            request[text_field] = body[text_field]
    if body.get("serviceAccount"):
        if not _SERVICE_ACCOUNT.match(body["serviceAccount"]):
            raise invalid_argument(f"serviceAccount must be a service account's email, got {body['serviceAccount']!r}")
        request["serviceAccount"] = body["serviceAccount"]
    if body.get("encryptionSpec"):
        request["encryptionSpec"] = _encryption_spec(body["encryptionSpec"])
    return request


def _source_model(body: dict) -> dict:
    """``{"baseModel": ...}`` or ``{"preTunedModel": {...}}``: exactly one of the two."""
    if "preTunedModel" in body:
        if body.get("baseModel"):
            raise invalid_argument("give baseModel or preTunedModel, not both: a continued job's base is its model's")
        pre_tuned = body["preTunedModel"]
        if not isinstance(pre_tuned, dict):
            raise invalid_argument("preTunedModel must be an object with tunedModelName")
        _reject_unknown(pre_tuned, _PRE_TUNED_FIELDS, "PreTunedModel", "preTunedModel.")
        name = pre_tuned.get("tunedModelName")
        if not isinstance(name, str) or not _TUNED_MODEL_NAME.match(name):
            raise invalid_argument("preTunedModel.tunedModelName must be "
                                   f"projects/P/locations/L/models/ID or .../models/ID@VERSION, got {name!r}")
        checkpoint = pre_tuned.get("checkpointId")
        if checkpoint is not None and (not isinstance(checkpoint, str) or not checkpoint):
            raise invalid_argument(f"preTunedModel.checkpointId must be a non-empty string, got {checkpoint!r}")
        return {"preTunedModel": {key: pre_tuned[key] for key in _PRE_TUNED_FIELDS & set(pre_tuned)}}
    base_model = body.get("baseModel")
    if not isinstance(base_model, str) or not base_model:
        raise invalid_argument("baseModel is required (for example \"gemini-2.5-flash\"), or preTunedModel")
    canonical_base_model(base_model)
    return {"baseModel": base_model}


def tuned_model_name_parts(name: str) -> tuple[str, str, str, str | None]:
    """Project, location, model id and version (None: the default) of a checked tunedModelName."""
    project, location, model_id, version = _TUNED_MODEL_NAME.match(name).groups()
    return project, location, model_id, version


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


def _encryption_spec(spec) -> dict:
    """Kept as given: the local service stores data unencrypted, the key is only recorded."""
    key = spec.get("kmsKeyName") if isinstance(spec, dict) else None
    if set(spec if isinstance(spec, dict) else ()) - {"kmsKeyName"} or not isinstance(key, str) or \
            not key.startswith("projects/") or "/cryptoKeys/" not in key:
        raise invalid_argument("encryptionSpec must be {\"kmsKeyName\": "
                               "\"projects/P/locations/L/keyRings/R/cryptoKeys/K\"}")
    return {"kmsKeyName": key}


def _reject_unknown(body: dict, accepted: set[str], message: str, prefix: str) -> None:
    """A field of Google's schema that is not honoured here is named as such; others are unknown."""
    for name in sorted(set(body) - accepted):
        if name in _NOT_HONOURED:
            raise invalid_argument(f"{_NOT_HONOURED[name]} is not supported by the local service")
        if name in fields_of(message):
            raise invalid_argument(f"{prefix}{name} is not supported by the local service in a create request")
        raise invalid_argument(
            f"Invalid JSON payload received. Unknown name \"{prefix}{name}\": "
            f"the local service accepts {', '.join(sorted(prefix + k for k in accepted))}"
        )
