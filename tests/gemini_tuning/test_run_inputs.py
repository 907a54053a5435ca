"""A run's inputs from a retraining event: the event's files only, a seeded held-out split otherwise."""

from __future__ import annotations

import json

import pytest

from gemini_tuning.dataset_checks.source import DatasetInputError
from gemini_tuning.run_inputs import (
    EVENT_KEYS, RunInputError, check_readable, from_event, held_out_split, starting_model, training_event,
)

FORM = {"training_dataset": "sample/train.jsonl", "validation_dataset": "sample/validation.jsonl",
        "smoke_test_prompts": "sample/heldout.jsonl", "task_type": "classification",
        "tuned_model_display_name": "support-ticket-router", "allow_small_dataset": False,
        "tune_from": "base_model", "pre_tuned_model": None, "smoke_test_count": 50,
        "require_better_than_base": True, "require_approval": False, "epoch_count": None}
NOT_FILES = {key: FORM[key] for key in EVENT_KEYS if key not in ("training_dataset", "validation_dataset",
                                                                 "smoke_test_prompts")}


def _example(index: int, label: str) -> str:
    return json.dumps({"contents": [{"role": "user", "parts": [{"text": f"ticket {index}"}]},
                                    {"role": "model", "parts": [{"text": label}]}]})


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_an_event_with_only_the_training_file_never_gets_the_forms_sample_files():
    settings = from_event({"training_dataset": "gs://b/new.jsonl"}, FORM)
    assert settings == {"training_dataset": "gs://b/new.jsonl", "validation_dataset": None,
                        "smoke_test_prompts": None, **NOT_FILES}


def test_an_event_posted_through_the_rest_api_is_accepted():
    settings = from_event({"training_dataset": "gs://b/new.jsonl", "from_rest_api": True}, FORM)
    assert settings["training_dataset"] == "gs://b/new.jsonl" and "from_rest_api" not in settings


def test_what_the_event_carries_replaces_the_form():
    extra = {key: f"from-event-{key}" for key in EVENT_KEYS}
    assert from_event(extra, FORM) == extra


@pytest.mark.parametrize("extra, words", [
    ({}, "no 'training_dataset'"),
    ({"training_dataset": ""}, "no 'training_dataset'"),
    ({"validation_dataset": "gs://b/v.jsonl"}, "no 'training_dataset'"),
    ({"training_dataset": "gs://b/t.jsonl", "epoch_count": 3}, "unknown key(s) ['epoch_count']"),
])
def test_a_bad_event_is_refused_naming_the_key(extra, words):
    with pytest.raises(RunInputError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        from_event(extra, FORM)


def test_an_event_value_is_checked_as_the_form_would_and_named():
    def check(key, value):
        if key == "smoke_test_count" and not isinstance(value, int):
            raise ValueError(f"{value!r} is not of type 'integer'")
        return value

    assert from_event({"training_dataset": "t", "smoke_test_count": 5}, FORM, check)["smoke_test_count"] == 5
    with pytest.raises(RunInputError, match="bad 'smoke_test_count': 'many' is not of type 'integer'"):
        from_event({"training_dataset": "t", "smoke_test_count": "many"}, FORM, check)


def test_the_split_is_seeded_disjoint_and_keeps_every_example(tmp_path):
    lines = [_example(i, ["billing", "shipping"][i % 2]) for i in range(50)]
    lines += lines[:5]  # duplicates: they must stay on one side
    source = _write(tmp_path / "train.jsonl", lines)
    first = held_out_split(source, str(tmp_path / "a"))
    again = held_out_split(source, str(tmp_path / "b"))
    training = (tmp_path / "a" / "train.jsonl").read_text().splitlines()
    validation = (tmp_path / "a" / "validation.jsonl").read_text().splitlines()
    assert validation == (tmp_path / "b" / "validation.jsonl").read_text().splitlines()  # same seed, same split
    assert not set(training) & set(validation)
    assert set(training) | set(validation) == set(lines)
    assert len(validation) == 5 and len(training) + len(validation) == 50 + sum(line in training for line in lines[:5])
    assert first["split"] == again["split"] == {
        "source": source, "seed": 0, "fraction": 0.1, "training_examples": len(training), "validation_examples": 5}
    assert first["validation_dataset"] == str(tmp_path / "a" / "validation.jsonl")


def test_examples_spelled_differently_are_the_same_example(tmp_path):
    spaced = [json.dumps(json.loads(_example(i, "billing")), indent=None, separators=(", ", ": ")) for i in range(10)]
    tight = [json.dumps(json.loads(_example(i, "billing")), separators=(",", ":")) for i in range(10)]
    source = _write(tmp_path / "train.jsonl", spaced + tight)
    held_out_split(source, str(tmp_path / "out"))
    validation = {json.dumps(json.loads(line), sort_keys=True)
                  for line in (tmp_path / "out" / "validation.jsonl").read_text().splitlines()}
    training = {json.dumps(json.loads(line), sort_keys=True)
                for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()}
    assert validation and not validation & training


def test_a_file_of_one_example_cannot_be_split(tmp_path):
    source = _write(tmp_path / "train.jsonl", [_example(1, "billing")] * 3)
    with pytest.raises(RunInputError, match="1 distinct example"):
        held_out_split(source, str(tmp_path / "out"))


def test_a_missing_training_file_is_named(tmp_path):
    missing = str(tmp_path / "nowhere.jsonl")
    with pytest.raises(DatasetInputError, match="nowhere.jsonl"):
        check_readable(missing)
    with pytest.raises(DatasetInputError, match="nowhere.jsonl"):
        held_out_split(missing, str(tmp_path / "out"))


def test_a_gs_training_file_is_split_into_gs_files_through_the_storage_connection(bucket):
    """Read and written where the upload and validation tasks read: gs:// through GCSHook (the emulator)."""
    source = bucket.upload("split/train.jsonl", "\n".join(_example(i, "billing") for i in range(20)) + "\n")
    split = held_out_split(source, f"gs://{bucket.name}/split/run-1")
    assert split["validation_dataset"] == f"gs://{bucket.name}/split/run-1/validation.jsonl"
    assert len(bucket.download("split/run-1/validation.jsonl").decode().splitlines()) == 2
    assert len(bucket.download("split/run-1/train.jsonl").decode().splitlines()) == 18


def test_a_run_retrains_on_its_triggering_event_or_for_the_time_schedule_on_the_newest_seen():
    def newest():
        return "newest"

    assert training_event("asset_triggered", ["older", "newer"], newest, "data") == "newer"
    assert training_event("scheduled", [], newest, "data") == "newest"
    assert training_event("manual", [], newest, "data") is None  # the form's values
    with pytest.raises(RunInputError, match="no event on data yet"):
        training_event("scheduled", [], lambda: None, "data")


def test_the_job_starts_from_the_base_the_incumbent_or_a_named_model():
    incumbent = {"model": "projects/p/locations/l/models/1@2", "endpoint": "projects/p/locations/l/endpoints/3"}
    assert starting_model("base_model", "gemini-2.5-flash", None, incumbent) == "gemini-2.5-flash"
    assert starting_model("incumbent", "gemini-2.5-flash", None, incumbent) == incumbent["model"]
    assert starting_model("incumbent", "gemini-2.5-flash", None, None) == "gemini-2.5-flash"  # the first run
    assert starting_model("named_model", "gemini-2.5-flash", "projects/p/locations/l/models/9", None).endswith("/9")
    with pytest.raises(RunInputError, match="pre_tuned_model is empty"):
        starting_model("named_model", "gemini-2.5-flash", None, incumbent)
    with pytest.raises(RunInputError, match="without its model's name"):
        starting_model("incumbent", "gemini-2.5-flash", None, {**incumbent, "model": None})


def test_a_missing_gs_training_file_is_named(bucket):
    with pytest.raises(DatasetInputError, match=f"gs://{bucket.name}/nowhere.jsonl"):
        check_readable(f"gs://{bucket.name}/nowhere.jsonl")
