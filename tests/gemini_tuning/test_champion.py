from __future__ import annotations

import pytest

from gemini_tuning.champion import pick_champion


def _job(name, epochs, **losses):
    return {"name": name, "epoch_count": epochs,
            "final_metrics": {f"/{k}_total_loss": {"step": 9, "value": v} for k, v in losses.items()}}


def test_lowest_validation_loss_wins():
    champion = pick_champion([_job("a", 2, eval=0.9, train=0.5), _job("b", 4, eval=0.7, train=0.2)])
    assert champion["name"] == "b" and champion["judged_by"] == "/eval_total_loss" and champion["loss"] == 0.7


def test_training_loss_does_not_beat_validation_loss():
    champion = pick_champion([_job("a", 2, eval=0.9, train=0.5), _job("b", 4, train=0.1)])
    assert champion["name"] == "a"


def test_training_loss_decides_when_no_job_was_validated():
    assert pick_champion([_job("a", 2, train=0.5), _job("b", 4, train=0.3)])["name"] == "b"


def test_no_candidates_or_no_losses_is_an_error():
    with pytest.raises(ValueError, match="no tuning job"):
        pick_champion([])
    with pytest.raises(ValueError, match="no loss reported"):
        pick_champion([_job("a", 2)])


def test_one_failed_member_of_a_sweep_does_not_hide_the_good_ones():
    from unittest import mock

    from google.genai import types

    from gemini_tuning.champion import choose_champion

    def job(name, state, epochs):
        return types.TuningJob(name=name, state=state, supervised_tuning_spec=types.SupervisedTuningSpec(
            hyper_parameters=types.SupervisedHyperParameters(epoch_count=epochs)))

    jobs = {"a": job("a", "JOB_STATE_SUCCEEDED", 2), "b": job("b", "JOB_STATE_FAILED", 3),
            "c": job("c", "JOB_STATE_SUCCEEDED", 4)}
    losses = {"a": 0.9, "c": 0.6}
    hook = mock.Mock()
    hook.get_tuning_job.side_effect = jobs.__getitem__
    hook.read_metric_series.side_effect = lambda j: [
        {"metric": "/eval_total_loss", "step": 5, "value": losses[j.name], "wall_time": "2026-01-01T00:00:00Z"}]
    champion = choose_champion(hook, ["a", "b", "c"])
    assert champion["name"] == "c" and champion["epoch_count"] == 4
    assert champion["not_considered"] == [{"name": "b", "state": "JOB_STATE_FAILED"}]
    with pytest.raises(ValueError, match="no tuning job of the sweep succeeded"):
        choose_champion(hook, ["b"])
