import math

import pytest

from include.tuning_engine.recommended import (
    BATCH_SIZES,
    MAX_EPOCHS,
    MIN_EPOCHS,
    TARGET_STEPS,
    adapter_rank,
    recommended_batch_size,
    recommended_hyperparameters,
    recommended_schedule,
)
from plugins.gemini_tuning.models import ADAPTER_SIZES


def test_recommendation_is_vertex_shaped():
    for count in (10, 520, 5000):
        recommended = recommended_hyperparameters(count)
        assert set(recommended) == {"epochCount", "adapterSize", "learningRateMultiplier"}
        assert recommended["adapterSize"] in ADAPTER_SIZES
        assert recommended["epochCount"] == recommended_schedule(count).epoch_count


def test_the_shipped_sample_trains_as_before():
    """520 examples: 2 epochs at batch 8 (130 steps), the settings that reach 100% held-out."""
    schedule = recommended_schedule(520)
    assert (schedule.epoch_count, schedule.batch_size, schedule.total_steps) == (2, 8, 130)


@pytest.mark.parametrize("count", [100, 120, 150, 160, 200])
def test_small_sets_get_twice_the_steps_at_batch_4(count):
    """2 epochs at batch 4: twice the steps of 2 at batch 8, in about 1.4x the time (measured)."""
    schedule = recommended_schedule(count)
    assert (schedule.batch_size, schedule.epoch_count) == (4, 2)
    assert schedule.total_steps == 2 * math.ceil(count / 4) >= 2 * (2 * math.ceil(count / 8)) - 2


@pytest.mark.parametrize("count", [1, 7, 50, 120, 263, 264, 300, 399, 520, 999, 2000, 90000])
def test_epochs_stay_in_range_and_reach_the_target_where_the_range_allows(count):
    schedule = recommended_schedule(count)
    most = MAX_EPOCHS[schedule.batch_size]
    assert MIN_EPOCHS <= schedule.epoch_count <= most
    assert schedule.total_steps >= TARGET_STEPS or schedule.epoch_count == most
    assert schedule.steps_per_epoch == math.ceil(count / schedule.batch_size)
    # The fewest epochs that reach the target: one fewer would not, unless at the floor.
    assert (schedule.epoch_count - 1) * schedule.steps_per_epoch < TARGET_STEPS or schedule.epoch_count == MIN_EPOCHS


def test_batch_size_shrinks_only_where_the_largest_cannot_reach_the_target():
    assert BATCH_SIZES == (8, 4)
    assert recommended_batch_size(300) == 8  # 3 epochs x 38 = 114 steps
    assert recommended_batch_size(264) == 4  # 3 epochs x 33 = 99 steps
    assert recommended_batch_size(5000) == 8
    assert recommended_schedule(300).epoch_count == 3 and recommended_schedule(400).epoch_count == 2


def test_requested_epochs_win_and_the_reason_says_so():
    schedule = recommended_schedule(120, epoch_count="5")
    assert (schedule.epoch_count, schedule.batch_size, schedule.total_steps) == (5, 4, 150)
    assert schedule.reason.startswith("5 epochs as requested: 120 examples at batch 4")


def test_reason_explains_examples_steps_epochs_and_why():
    reason = recommended_schedule(120).reason
    assert reason.startswith("2 epochs recommended: 120 examples at batch 4 are 30 steps per epoch, "
                             "60 optimisation steps in all")
    assert f"about {TARGET_STEPS} steps" in reason and "batch 4, not 8" in reason
    assert "batch 4, not 8" not in recommended_schedule(520).reason
    assert recommended_schedule(120).to_dict()["total_steps"] == 60


def test_adapter_ranks():
    assert [adapter_rank(name) for name in ADAPTER_SIZES] == [1, 2, 4, 8, 16, 32]
    with pytest.raises(ValueError, match="ADAPTER_SIZE_ONE"):
        adapter_rank("ADAPTER_SIZE_THREE")


def test_an_empty_set_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one example, not 0"):
        recommended_hyperparameters(0)
