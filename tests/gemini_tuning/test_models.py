"""The one table of tunable models: what it allows, the form's suggestions, and the create
operator refusing a size the model does not take before any job is created."""

from __future__ import annotations

from unittest import mock

import pytest

from gemini_tuning.models import (
    ADAPTER_SIZES,
    DEFAULT_BASE_MODEL,
    SUGGESTED_BASE_MODELS,
    TuningRequestError,
    check_tuning_request,
    tunable_model,
)
from gemini_tuning.operators.tuning_job import CreateTuningJobOperator
from tests.gemini_tuning.helpers import task_context


def test_googles_list_of_september_2026_with_the_guides_model_still_accepted():
    assert SUGGESTED_BASE_MODELS == ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite",
                                     "gemini-3.1-flash-lite", "gemini-3.5-flash")
    assert tunable_model("gemini-1.0-pro-002").adapter_sizes[-1] == "ADAPTER_SIZE_SIXTEEN"
    assert tunable_model("gemini-2.5-pro").adapter_sizes == ADAPTER_SIZES[:4]
    assert all(tunable_model(name).adapter_sizes == ADAPTER_SIZES[:5] for name in SUGGESTED_BASE_MODELS[1:])
    assert tunable_model("gemini-2.0-flash-001") is None


@pytest.mark.parametrize("name, found", [
    ("publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash"),
    ("gemini-2.5-flash-001", "gemini-2.5-flash"),
    ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
    ("gemini-2.5-flash-preview", None),
])
def test_names_are_found_with_their_prefix_or_version(name, found):
    model = tunable_model(name)
    assert (model.name if model else None) == found


def test_the_check_names_the_allowed_sizes_and_regions():
    check_tuning_request("gemini-2.5-pro", "ADAPTER_SIZE_EIGHT", "asia-east1")
    with pytest.raises(TuningRequestError, match="takes ADAPTER_SIZE_ONE, ADAPTER_SIZE_TWO, "
                                                 "ADAPTER_SIZE_FOUR, ADAPTER_SIZE_EIGHT$"):
        check_tuning_request("gemini-2.5-pro", "ADAPTER_SIZE_SIXTEEN")
    with pytest.raises(TuningRequestError, match="only in us-central1 or europe-west4, not in asia-east1"):
        check_tuning_request("gemini-3.5-flash", None, "asia-east1")
    check_tuning_request("some-future-model", "ADAPTER_SIZE_THIRTY_TWO", "anywhere")  # the backend judges


def test_the_form_defaults_to_gemini_2_5_flash_and_suggests_the_current_models():
    from dags.gemini_supervised_tuning import PARAMS

    param = PARAMS["base_model"]
    assert DEFAULT_BASE_MODEL == "gemini-2.5-flash" == param.value
    assert param.schema["type"] == "string" and param.schema["examples"] == list(SUGGESTED_BASE_MODELS)
    param.resolve("my-own-model")  # a free value stays allowed


def test_create_operator_refuses_a_size_the_model_does_not_take_before_any_job():
    operator = CreateTuningJobOperator(task_id="create", base_model="gemini-2.5-pro",
                                       training_dataset_uri="gs://b/t.jsonl", adapter_size=16)
    with mock.patch.object(CreateTuningJobOperator, "hook") as hook:
        hook.location = "us-central1"
        with pytest.raises(TuningRequestError, match="ADAPTER_SIZE_SIXTEEN is not available for gemini-2.5-pro"):
            operator.execute(task_context())
    hook.create_tuning_job.assert_not_called()
    hook.find_tuning_jobs_by_labels.assert_not_called()
