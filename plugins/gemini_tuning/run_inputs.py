"""
What one pipeline run tunes on: the form's values, or those of the Asset event that started it.

A retraining event says which new training file landed and may say more (validation file,
prompts, task type, model name). Whatever it does not say comes from its data, never from the
form's sample defaults: no validation file means a seeded held-out split of the training file,
written next to the run's archive; no prompts means the smoke test samples that split.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gemini_tuning.dataset_checks.source import GCS_CONN_ID, read_text, readable_file, write_file

FILE_KEYS = ("training_dataset", "validation_dataset", "smoke_test_prompts")
# What an event's extra may carry: what the data is and how the run treats its model. The
# hyperparameters and generation settings keep the form's defaults, so successive retraining
# runs are compared under the same settings.
EVENT_KEYS = (
    *FILE_KEYS, "task_type", "tuned_model_display_name", "allow_small_dataset", "tune_from", "pre_tuned_model",
    "smoke_test_count", "require_better_than_base", "require_approval",
)
# What Airflow itself adds to an event's extra (an event posted through its REST API).
AIRFLOW_KEYS = ("from_rest_api",)
HELD_OUT_FRACTION = 0.1
# Vertex takes at most 5,000 validation examples.
MAX_HELD_OUT = 5000
SPLIT_SEED = 0


class RunInputError(ValueError):
    """The run cannot start from these inputs; the message names the key or file."""


def training_event(run_type: str, triggering: Sequence[Any], newest: Callable[[], Any], asset_name: str) -> Any:
    """
    The event a run retrains on: the newest that triggered it; for a run of the time schedule
    (no triggering event) the newest the Asset has seen; for a run from the form, none.
    """
    if triggering:
        return triggering[-1]
    if run_type != "scheduled":
        return None
    event = newest()
    if event is None:
        raise RunInputError(f"no event on {asset_name} yet: there is no training file to retrain on")
    return event


def from_event(extra: dict[str, Any], defaults: dict[str, Any],
               check: Callable[[str, Any], Any] = lambda key, value: value) -> dict[str, Any]:
    """
    The run's settings from an event's extra: the files it names (and only those), the other
    settings it carries over the form's defaults. ``check(key, value)`` validates a value as the
    form would (ValueError otherwise).
    """
    extra = {key: value for key, value in extra.items() if key not in AIRFLOW_KEYS}
    unknown = sorted(set(extra) - set(EVENT_KEYS))
    if unknown:
        raise RunInputError(f"the event's extra has unknown key(s) {unknown}: it may carry {list(EVENT_KEYS)}")
    if not extra.get("training_dataset"):
        raise RunInputError(
            "the event's extra has no 'training_dataset': a retraining event must name the new training file"
        )
    settings = {key: defaults[key] for key in EVENT_KEYS if key not in FILE_KEYS}
    settings.update({key: None for key in FILE_KEYS})
    for key, value in extra.items():
        if value in (None, ""):
            continue
        try:
            settings[key] = check(key, value)
        except ValueError as error:
            raise RunInputError(f"the event's extra has a bad {key!r}: {str(error).splitlines()[0]}") from None
    return settings


def starting_model(tune_from: str, base_model: str, named_model: str | None, incumbent: dict | None) -> str:
    """What the job tunes: the base model, the incumbent (the base model while there is none) or a named model."""
    if tune_from == "base_model" or (tune_from == "incumbent" and incumbent is None):
        return base_model
    if tune_from == "incumbent":
        if not incumbent.get("model"):
            raise RunInputError(f"the incumbent {incumbent['endpoint']} was published without its model's name, "
                                "so it cannot be continued: tune from the base model or name the model")
        return incumbent["model"]
    if not named_model:
        raise RunInputError("tune_from is named_model, but pre_tuned_model is empty")
    return named_model


def absolute(location: str | None, root: Path) -> str | None:
    """A path relative to the project made absolute, so the sample data works from any folder."""
    if location and "://" not in location and not Path(location).is_absolute():
        return str(root / location)
    return location


def _example_key(line: str) -> str:
    """Two lines are the same example when they hold the same JSON, however it is spaced."""
    try:
        return json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False)
    except ValueError:
        return line.strip()


def held_out_split(
    training_uri: str,
    destination: str,
    *,
    seed: int = SPLIT_SEED,
    fraction: float = HELD_OUT_FRACTION,
    storage_conn_id: str = GCS_CONN_ID,
    impersonation_chain: str | Sequence[str] | None = None,
) -> dict[str, Any]:
    """
    Split a training file into training and held-out validation files under ``destination``.

    The same file and seed always give the same split. Identical examples (same JSON) land on
    the same side, so no example is in both. Returns the two URIs and the split's description.
    """
    storage = {"gcp_conn_id": storage_conn_id, "impersonation_chain": impersonation_chain}
    lines = [line for line in read_text(training_uri, **storage).splitlines() if line.strip()]
    keys = list(dict.fromkeys(_example_key(line) for line in lines))
    if len(keys) < 2:
        raise RunInputError(f"{training_uri}: {len(keys)} distinct example(s), too few to hold any out for validation")
    count = max(1, min(MAX_HELD_OUT, round(len(keys) * fraction)))
    held_out = {keys[index] for index in random.Random(seed).sample(range(len(keys)), count)}
    training, validation, seen = [], [], set()
    for line in lines:
        key = _example_key(line)
        if key not in held_out:
            training.append(line)
        elif key not in seen:
            seen.add(key)
            validation.append(line)
    uris = {"training_dataset": f"{destination}/train.jsonl", "validation_dataset": f"{destination}/validation.jsonl"}
    for key, part in (("training_dataset", training), ("validation_dataset", validation)):
        write_file(uris[key], "\n".join(part) + "\n", content_type="application/jsonl", **storage)
    return {
        **uris,
        "split": {
            "source": training_uri,
            "seed": seed,
            "fraction": fraction,
            "training_examples": len(training),
            "validation_examples": len(validation),
        },
    }


def check_readable(uri: str, storage_conn_id: str = GCS_CONN_ID,
                   impersonation_chain: str | Sequence[str] | None = None) -> None:
    """DatasetInputError naming the file when it cannot be read: before anything is paid for."""
    with readable_file(uri, gcp_conn_id=storage_conn_id, impersonation_chain=impersonation_chain):
        pass
