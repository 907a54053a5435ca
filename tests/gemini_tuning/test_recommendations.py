from __future__ import annotations

import pytest

from gemini_tuning.recommendations import minimum_examples, recommend
from include.tuning_engine.recommended import recommended_hyperparameters


@pytest.mark.parametrize(
    ("task_type", "minimum"),
    [("classification", 500), ("summarization", 1000), ("extractive_qa", 500), ("chat", 1000)],
)
def test_minimums_follow_the_guide(task_type, minimum):
    assert minimum_examples(task_type) == minimum


def test_classification_with_many_classes_needs_more_data():
    assert minimum_examples("classification", class_count=5) == 500
    assert minimum_examples("classification", class_count=12) == 1200
    rec = recommend("classification", 800, class_count=12)
    assert not rec.enough_data and not rec.proceed
    assert "12 classes" in rec.reasons[0]


def test_small_dataset_stops_unless_allowed():
    stopped = recommend("chat", 80)
    assert not stopped.proceed
    assert "below the 1000 recommended for chat" in stopped.reasons[1]
    allowed = recommend("chat", 80, allow_small_dataset=True)
    assert allowed.proceed and not allowed.enough_data


@pytest.mark.parametrize("examples", [1, 100, 120, 160, 200, 300, 520, 999, 1000, 2000, 90000])
@pytest.mark.parametrize("task_type", ["classification", "chat"])
def test_pipeline_and_local_service_recommend_the_same_epochs(task_type, examples):
    """One rule: the epochs the DAG sends are those the service fills in when they are unset."""
    rec = recommend(task_type, examples, allow_small_dataset=True)
    assert rec.epoch_counts == [recommended_hyperparameters(examples)["epochCount"]]


def test_small_set_reasons_give_examples_classes_steps_and_epochs():
    rec = recommend("classification", 120, class_count=10, allow_small_dataset=True)
    assert rec.epoch_counts == [2]
    assert rec.reasons[0] == "10 classes: at least 1000 examples recommended"
    assert rec.reasons[2].startswith("2 epochs recommended: 120 examples at batch 4 are 30 steps per epoch, "
                                     "60 optimisation steps in all")
    [schedule] = rec.to_dict()["schedules"]
    assert schedule["batch_size"] == 4 and schedule["total_steps"] == 60 and schedule["reason"] == rec.reasons[2]


def test_user_values_win():
    rec = recommend("classification", 520, epoch_count=7, adapter_size="ADAPTER_SIZE_EIGHT",
                    learning_rate_multiplier=0.5)
    assert rec.epoch_counts == [7]
    assert rec.adapter_size == "ADAPTER_SIZE_EIGHT" and rec.learning_rate_multiplier == 0.5


def test_an_epoch_sweep_is_one_job_of_the_largest_count():
    rec = recommend("classification", 520, epoch_count=3, epoch_sweep=[4, 2, 4])
    assert rec.epoch_sweep == [2, 4] and rec.epoch_counts == [4]
    assert rec.jobs == [{"epoch_count": 4, "adapter_size": None, "learning_rate_multiplier": None}]
    assert [schedule["total_steps"] for schedule in rec.schedules] == [260]


def test_adapter_size_and_learning_rate_sweeps_make_one_job_per_setting_bounded():
    rec = recommend("classification", 520, epoch_sweep=[1, 2], adapter_size_sweep=["ADAPTER_SIZE_FOUR", "ADAPTER_SIZE_ONE"],
                    learning_rate_multiplier_sweep=[2, 0.5])
    assert [(job["adapter_size"], job["learning_rate_multiplier"]) for job in rec.jobs] == [
        ("ADAPTER_SIZE_FOUR", 0.5), ("ADAPTER_SIZE_FOUR", 2.0), ("ADAPTER_SIZE_ONE", 0.5), ("ADAPTER_SIZE_ONE", 2.0)]
    assert rec.epoch_counts == [2] * 4
    with pytest.raises(ValueError, match="3 adapter sizes x 3 learning-rate multipliers are 9 tuning jobs; at most 8"):
        recommend("classification", 520, adapter_size_sweep=["ADAPTER_SIZE_ONE", "ADAPTER_SIZE_TWO", "ADAPTER_SIZE_FOUR"],
                  learning_rate_multiplier_sweep=[0.5, 1, 2])


def test_warnings_are_kept_as_reasons_and_result_is_serialisable():
    rec = recommend("summarization", 1500, warnings=["3 duplicate examples"])
    assert rec.reasons[-1] == "data warning: 3 duplicate examples"
    assert rec.to_dict()["epoch_counts"] == [2]


def test_unknown_task_type_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown task type 'poetry'"):
        recommend("poetry", 10)
