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
