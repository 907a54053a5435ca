"""The Gemini models that support supervised tuning, and what each one allows.

One table for the whole project: the DAG's form suggests these names, the create operator checks
a request against it before any job is created, and the local Vertex service checks its create
requests with the same function. Google's list of September 2026: Gemini 2.5 Pro, 2.5 Flash,
2.5 Flash-Lite, 3.1 Flash-Lite and 3.5 Flash; adapter sizes ONE to SIXTEEN, 2.5 Pro only up to
EIGHT; Gemini 3.x tunes only in us-central1 and europe-west4. gemini-1.0-pro-002, the model of
Google's original tuning guide (legacy `messages` datasets), is still accepted.

A model that is not in the table is not refused here: the form takes a free value and the
backend has the last word on it. This module imports nothing beyond the standard library, so
the DAG file and the local service import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

# Vertex's AdapterSize enum, smallest first.
ADAPTER_SIZES = (
    "ADAPTER_SIZE_ONE",
    "ADAPTER_SIZE_TWO",
    "ADAPTER_SIZE_FOUR",
    "ADAPTER_SIZE_EIGHT",
    "ADAPTER_SIZE_SIXTEEN",
    "ADAPTER_SIZE_THIRTY_TWO",
)
_UP_TO_EIGHT = ADAPTER_SIZES[:4]
_UP_TO_SIXTEEN = ADAPTER_SIZES[:5]
GEMINI_3_REGIONS = ("us-central1", "europe-west4")
_NAME_PREFIXES = ("publishers/google/models/", "models/")


@dataclass(frozen=True)
class TunableModel:
    name: str
    adapter_sizes: tuple[str, ...]
    regions: tuple[str, ...] | None = None  # None: every region that offers tuning
    current: bool = True  # on Google's current list (the form suggests these)


TUNABLE_MODELS = (
    TunableModel("gemini-2.5-pro", _UP_TO_EIGHT),
    TunableModel("gemini-2.5-flash", _UP_TO_SIXTEEN),
    TunableModel("gemini-2.5-flash-lite", _UP_TO_SIXTEEN),
    TunableModel("gemini-3.1-flash-lite", _UP_TO_SIXTEEN, GEMINI_3_REGIONS),
    TunableModel("gemini-3.5-flash", _UP_TO_SIXTEEN, GEMINI_3_REGIONS),
    TunableModel("gemini-1.0-pro-002", _UP_TO_SIXTEEN, current=False),
)
DEFAULT_BASE_MODEL = "gemini-2.5-flash"
SUGGESTED_BASE_MODELS = tuple(model.name for model in TUNABLE_MODELS if model.current)


class TuningRequestError(ValueError):
    """A base model, adapter size or region that Google's list does not allow together."""


def tunable_model(name: str) -> TunableModel | None:
    """The table's entry for `name` (bare, publisher-qualified, or with a -NNN version suffix)."""
    bare = name
    for prefix in _NAME_PREFIXES:
        bare = bare.removeprefix(prefix)
    for model in TUNABLE_MODELS:
        suffix = bare.removeprefix(model.name)
        if bare == model.name or (bare.startswith(model.name + "-") and suffix[1:].isdigit()):
            return model
    return None


def check_tuning_request(base_model: str, adapter_size: str | None = None, region: str | None = None) -> None:
    """Raise TuningRequestError when the table says `base_model` cannot tune this way."""
    model = tunable_model(base_model)
    if model is None:
        return
    if adapter_size and adapter_size not in model.adapter_sizes:
        raise TuningRequestError(
            f"adapter size {adapter_size} is not available for {model.name}: "
            f"it takes {', '.join(model.adapter_sizes)}"
        )
    if region and model.regions and region not in model.regions:
        raise TuningRequestError(
            f"{model.name} can be tuned only in {' or '.join(model.regions)}, not in {region}"
        )
