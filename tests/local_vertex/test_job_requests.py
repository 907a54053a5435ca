"""The create body: both spellings, label keys untouched, Vertex's JSON types for the values,
the per-model table, and the fields kept or refused."""

from __future__ import annotations

import pytest

from include.local_vertex.errors import ApiError
from include.local_vertex.job_requests import parse_create_request as parse
from include.local_vertex.wire import canonical


def parse_create_request(body, location="us-central1"):
    """As the route reads a body: canonical form first (wire.read_request), then validation."""
    return parse(canonical(body, "TuningJob"), location)


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


def test_a_pre_tuned_model_is_kept_by_name_and_a_bad_one_is_refused():
    request = parse_create_request({"preTunedModel": {"tunedModelName": "projects/p/locations/l/models/1@2"},
                                    "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}}, "l")
    assert request["preTunedModel"] == {"tunedModelName": "projects/p/locations/l/models/1@2"}
    assert "baseModel" not in request
    with pytest.raises(ApiError, match="preTunedModel.tunedModelName must be"):
        parse_create_request({"preTunedModel": {"tunedModelName": "models/1"},
                              "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}}, "l")


@pytest.mark.parametrize("model, size, allowed", [
    ("gemini-2.5-pro", "ADAPTER_SIZE_SIXTEEN", "ADAPTER_SIZE_ONE, ADAPTER_SIZE_TWO, ADAPTER_SIZE_FOUR, ADAPTER_SIZE_EIGHT"),
    ("gemini-2.5-flash", "ADAPTER_SIZE_THIRTY_TWO", "ADAPTER_SIZE_SIXTEEN"),
    ("publishers/google/models/gemini-3.5-flash", "ADAPTER_SIZE_THIRTY_TWO", "ADAPTER_SIZE_SIXTEEN"),
])
def test_adapter_size_is_checked_per_model_naming_the_allowed_sizes(model, size, allowed):
    with pytest.raises(ApiError) as raised:
        parse_create_request({"baseModel": model, "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://b/t.jsonl", "hyperParameters": {"adapterSize": size}}})
    assert raised.value.http_code == 400 and size in raised.value.message and allowed in raised.value.message


def test_enum_values_in_any_case_and_the_largest_size_each_model_allows():
    request = parse_create_request({"baseModel": "gemini-2.5-pro", "supervisedTuningSpec": {
        "trainingDatasetUri": "gs://b/t.jsonl", "hyperParameters": {"adapterSize": "adapter_size_eight"}}})
    assert request["supervisedTuningSpec"]["hyperParameters"] == {"adapterSize": "ADAPTER_SIZE_EIGHT"}


def test_gemini_3_tunes_only_in_its_regions():
    body = {"baseModel": "gemini-3.1-flash-lite", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}}
    assert parse_create_request(body, "europe-west4")["baseModel"] == "gemini-3.1-flash-lite"
    with pytest.raises(ApiError, match="only in us-central1 or europe-west4, not in asia-east1"):
        parse_create_request(body, "asia-east1")
    assert parse_create_request({**body, "baseModel": "gemini-2.5-flash"}, "asia-east1")


def test_service_account_and_encryption_spec_are_kept():
    key = "projects/p/locations/us-central1/keyRings/r/cryptoKeys/k"
    request = parse_create_request({
        "baseModel": "gemini-2.5-flash", "service_account": "tuner@p.iam.gserviceaccount.com",
        "encryption_spec": {"kms_key_name": key}, "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}})
    assert request["serviceAccount"] == "tuner@p.iam.gserviceaccount.com"
    assert request["encryptionSpec"] == {"kmsKeyName": key}
    with pytest.raises(ApiError, match="encryptionSpec"):
        parse_create_request({"baseModel": "gemini-2.5-flash", "encryptionSpec": {"kmsKeyName": "k"},
                              "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}})


@pytest.mark.parametrize("extra, words", [
    ({"preferenceOptimizationSpec": {"trainingDatasetUri": "gs://b/p.jsonl"}}, "preference tuning"),
    ({"supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl", "evaluationConfig": {}}},
     "evaluation during tuning"),
    ({"gcsMetricsUri": "gs://b/m"}, "gcsMetricsUri is not supported by the local service"),
    ({"colour": "red"}, 'Unknown name "colour"'),
])
def test_what_the_local_service_cannot_honour_is_refused_by_name(extra, words):
    body = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}, **extra}
    with pytest.raises(ApiError) as raised:
        parse_create_request(body)
    assert raised.value.http_code == 400 and words in raised.value.message
