"""The create body: both spellings, label keys untouched, Vertex's JSON types for the values."""

from __future__ import annotations

import pytest

from include.local_vertex.errors import ApiError
from include.local_vertex.job_requests import parse_create_request


def test_snake_case_becomes_camel_case_but_label_keys_stay_as_written():
    request = parse_create_request({
        "base_model": "gemini-2.5-flash",
        "tuned_model_display_name": "x",
        "labels": {"cost_center": "a_b"},
        "supervised_tuning_spec": {
            "training_dataset_uri": "gs://b/t.jsonl",
            "hyper_parameters": {"epoch_count": "3", "adapter_size": "ADAPTER_SIZE_ONE",
                                 "learning_rate_multiplier": "0.5"},
        },
    })
    assert request == {
        "baseModel": "gemini-2.5-flash",
        "tunedModelDisplayName": "x",
        "labels": {"cost_center": "a_b"},
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://b/t.jsonl",
            "hyperParameters": {"epochCount": "3", "adapterSize": "ADAPTER_SIZE_ONE", "learningRateMultiplier": 0.5},
        },
    }


def test_unset_and_unspecified_hyperparameters_are_left_for_the_recommendation():
    request = parse_create_request({"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {
        "trainingDatasetUri": "gs://b/t.jsonl",
        "hyperParameters": {"epochCount": 0, "adapterSize": "ADAPTER_SIZE_UNSPECIFIED"}}})
    assert request["supervisedTuningSpec"]["hyperParameters"] == {}


@pytest.mark.parametrize("hyper, field", [
    ({"epochCount": 2.5}, "epochCount"),
    ({"epochCount": 101}, "epochCount"),
    ({"learningRateMultiplier": True}, "learningRateMultiplier"),
    ({"learningRateMultiplier": "nan"}, "learningRateMultiplier"),
    ({"adapterSize": 4}, "adapterSize"),
])
def test_bad_hyperparameters_name_their_field(hyper, field):
    with pytest.raises(ApiError) as raised:
        parse_create_request({"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://b/t.jsonl", "hyperParameters": hyper}})
    assert raised.value.http_code == 400 and f"hyperParameters.{field}" in raised.value.message


def test_continuous_tuning_is_refused_clearly():
    with pytest.raises(ApiError, match="continuous tuning"):
        parse_create_request({"preTunedModel": {"tunedModelName": "projects/p/locations/l/models/1"},
                              "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}})
