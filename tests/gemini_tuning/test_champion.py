"""Choosing the run's best checkpoint: every checkpoint of every job, by its validation loss."""

from __future__ import annotations

from unittest import mock

import pytest
from google.genai import types

from gemini_tuning.champion import choose_champion, loss_at, pick_checkpoint
from gemini_tuning.hooks.tuning import GenAITuningHook

WALL = "2026-01-01T00:00:00Z"


def _job(name, state="JOB_STATE_SUCCEEDED", epochs=3, steps_per_epoch=10, checkpoints=True, adapter="ADAPTER_SIZE_FOUR"):
    tuned = None
    if state == "JOB_STATE_SUCCEEDED":
        listed = [types.TunedModelCheckpoint(checkpoint_id=str(e), epoch=e, step=e * steps_per_epoch,
                                             endpoint=f"{name}/endpoints/{e}") for e in range(1, epochs + 1)]
        tuned = types.TunedModel(model=f"{name}/models/1@1", endpoint=f"{name}/endpoints/main",
                                 checkpoints=listed if checkpoints else None)
    return types.TuningJob(name=name, state=state, tuned_model=tuned, supervised_tuning_spec=types.SupervisedTuningSpec(
        hyper_parameters=types.SupervisedHyperParameters(epoch_count=epochs, adapter_size=adapter)))


def _hook(jobs: dict, series: dict) -> mock.Mock:
    hook = mock.Mock()
    hook.get_tuning_job.side_effect = jobs.__getitem__
    hook.read_metric_series.side_effect = lambda job: [
        {"metric": metric, "step": step, "value": value, "wall_time": WALL}
        for metric, points in series[job.name].items() for step, value in points.items()]
    hook.list_checkpoints.side_effect = GenAITuningHook.list_checkpoints
    return hook


def test_the_checkpoint_with_the_lowest_validation_loss_at_its_step_wins_across_jobs():
    jobs = {"a": _job("a"), "b": _job("b", adapter="ADAPTER_SIZE_ONE")}
    series = {"a": {"/eval_total_loss": {10: 0.9, 20: 0.5, 30: 0.7}, "/train_total_loss": {30: 0.1}},
              "b": {"/eval_total_loss": {10: 0.8, 20: 0.6, 30: 0.55}, "/train_total_loss": {30: 0.2}}}
    champion = choose_champion(_hook(jobs, series), ["a", "b"])
    assert (champion["name"], champion["checkpoint_id"], champion["epoch"], champion["step"]) == ("a", "2", 2, 20)
    assert champion["endpoint"] == "a/endpoints/2" and champion["model"] == "a/models/1@1"
    assert champion["judged_by"] == "/eval_total_loss" and champion["loss"] == 0.5
    assert champion["adapter_size"] == "ADAPTER_SIZE_FOUR"
    assert len(champion["checkpoints"]) == 6 and "lowest validation loss" in champion["reason"]


def test_ties_go_to_the_earlier_checkpoint():
    series = {"a": {"/eval_total_loss": {10: 0.5, 20: 0.5, 30: 0.6}}}
    assert choose_champion(_hook({"a": _job("a")}, series), ["a"])["checkpoint_id"] == "1"


def test_without_validation_data_the_last_checkpoint_is_used_and_the_reason_says_why():
    jobs = {"a": _job("a"), "b": _job("b")}
    series = {"a": {"/train_total_loss": {10: 0.9, 30: 0.3}}, "b": {"/train_total_loss": {10: 0.9, 30: 0.2}}}
    champion = choose_champion(_hook(jobs, series), ["a", "b"])
    assert (champion["name"], champion["checkpoint_id"]) == ("b", "3")
    assert champion["judged_by"] == "/train_total_loss"
    assert champion["reason"].startswith("no validation data, so no loss to compare checkpoints by")


def test_a_job_without_listed_checkpoints_is_one_checkpoint_its_final_model():
    series = {"a": {"/eval_total_loss": {30: 0.4}}}
    champion = choose_champion(_hook({"a": _job("a", checkpoints=False)}, series), ["a"])
    assert champion["checkpoint_id"] is None and champion["endpoint"] == "a/endpoints/main" and champion["loss"] == 0.4


def test_one_failed_member_of_a_sweep_does_not_hide_the_good_ones():
    jobs = {"a": _job("a"), "b": _job("b", state="JOB_STATE_FAILED"), "c": _job("c", epochs=4)}
    series = {"a": {"/eval_total_loss": {10: 0.9}}, "c": {"/eval_total_loss": {40: 0.6}}}
    hook = _hook(jobs, series)
    champion = choose_champion(hook, ["a", "b", "c"])
    assert champion["name"] == "c" and champion["epoch_count"] == 4 and champion["checkpoint_id"] == "4"
    assert champion["not_considered"] == [{"name": "b", "state": "JOB_STATE_FAILED"}]
    with pytest.raises(ValueError, match="no tuning job of the run succeeded"):
        choose_champion(hook, ["b"])


def test_loss_at_a_step_is_the_point_there_or_the_last_before():
    assert loss_at({10: 0.5, 20: 0.4}, 15) == 0.5 and loss_at({10: 0.5}, 5) is None
    assert loss_at({10: 0.5, 20: 0.4}, None) == 0.4 and loss_at({}, 3) is None


def test_no_candidates_or_no_losses_is_an_error():
    with pytest.raises(ValueError, match="no checkpoint"):
        pick_checkpoint([])
    with pytest.raises(ValueError, match="no loss reported"):
        pick_checkpoint([{"name": "a", "job_index": 0, "checkpoint_id": "1", "epoch": 1, "step": 1, "endpoint": "e",
                          "validation_loss": None, "final_training_loss": None, "last": True}])
