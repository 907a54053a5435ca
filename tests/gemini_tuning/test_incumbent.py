"""Champion and challenger: the new model replaces the incumbent only when it scores at least as well."""

from __future__ import annotations

import json

import pytest

from gemini_tuning.incumbent import KEEP, PUBLISH, approval_body, incumbent_from_event, superseded, verdict
from tests.gemini_tuning.test_operators import PROMPTS, _smoke


OLD = {"model": "models/old@1", "endpoint": "endpoints/old"}


def _results(tuned, incumbent=..., base=0.1):
    return {"model": "endpoints/new", "incumbent_model": None if incumbent is ... else "endpoints/old",
            "tuned": {"score": tuned}, "base": {"score": base},
            "incumbent": None if incumbent is ... else {"score": incumbent}}


@pytest.mark.parametrize("tuned, incumbent, decision, reason", [
    (0.5, ..., PUBLISH, "no incumbent"),
    (0.8, 0.7, PUBLISH, "challenger 0.800 >= incumbent 0.700"),
    (0.7, 0.7, PUBLISH, "challenger 0.700 >= incumbent 0.700"),
    (0.6, 0.7, KEEP, "challenger 0.600 < incumbent 0.700"),
    (None, 0.7, KEEP, "cannot be shown"),
    (0.9, None, KEEP, "cannot be shown"),
])
def test_the_challenger_is_published_only_when_it_scores_at_least_as_well(tuned, incumbent, decision, reason):
    decided = verdict(_results(tuned, incumbent), None if incumbent is ... else OLD)
    assert decided["decision"] == decision and reason in decided["reason"]
    assert decided["scores"] == {"challenger": tuned, "incumbent": None if incumbent is ... else incumbent, "base": 0.1}


@pytest.mark.parametrize("incumbent, current", [(..., OLD), (0.7, {"model": "models/new@1", "endpoint": "endpoints/x"}),
                                                 (0.7, None)])
def test_a_model_published_by_another_run_meanwhile_is_not_replaced(incumbent, current):
    """Overlapping runs: the verdict holds only against the incumbent this run compared with."""
    decided = verdict(_results(0.9, incumbent), current)
    assert decided["decision"] == KEEP and "the current model changed while this run ran" in decided["reason"]
    assert superseded(_results(0.9, incumbent)["incumbent_model"], current) == decided["reason"]
    assert superseded("endpoints/old", OLD) is None and superseded(None, None) is None


def test_the_incumbent_is_the_newest_publish_event():
    extra = {"model": "projects/p/locations/l/models/1@2", "endpoint": "projects/p/locations/l/endpoints/9",
             "tuning_job": "projects/p/locations/l/tuningJobs/9", "smoke_test_score": 0.8, "archive": {}}
    assert incumbent_from_event(extra) == {key: extra[key] for key in ("model", "endpoint", "tuning_job",
                                                                        "smoke_test_score")}
    assert incumbent_from_event(None) is None and incumbent_from_event({}) is None


def test_the_approval_body_shows_the_three_scores_and_answers_side_by_side():
    decided = verdict(_results(0.8, 0.5, base=0.0), OLD)
    examples = [{"prompt": f"ticket | {i}", "expected": "billing", "tuned_answer": "billing",
                 "incumbent_answer": "shipping", "base_answer": "?"} for i in range(8)]
    body = approval_body(decided, examples)
    assert "**Challenger** `endpoints/new`: 80.0%" in body and "**Incumbent** `endpoints/old`: 50.0%" in body
    assert "**Base model**: 0.0%" in body
    rows = [line for line in body.splitlines() if line.startswith("| ticket")]
    assert len(rows) == 5 and rows[0] == "| ticket \\| 0 | billing | billing | shipping | ? |"


def test_the_smoke_test_asks_the_incumbent_the_same_prompts_with_the_same_settings(tmp_path):
    results_file = tmp_path / "smoke.json"
    results, hook = _smoke({"endpoints/1": ["billing", "shipping", "x"], "base": ["no", "no", "x"],
                            "endpoints/0": ["billing", "no", "x"]},
                           prompts=PROMPTS, base_model="base", incumbent_model="endpoints/0", temperature="0",
                           results_uri=str(results_file))
    assert (results["tuned"]["score"], results["incumbent"]["score"], results["base"]["score"]) == (1.0, 0.5, 0.0)
    assert results["incumbent_model"] == "endpoints/0"
    configs = {call.kwargs["model"]: call.kwargs["generation_config"] for call in hook.generate_content.call_args_list}
    assert set(configs) == {"endpoints/1", "base", "endpoints/0"} and len({json.dumps(c) for c in configs.values()}) == 1
    written = json.loads(results_file.read_text())["examples"]
    assert [e["incumbent_answer"] for e in written] == ["billing", "no", "x"]
    assert verdict(results, {"model": "models/0@1", "endpoint": "endpoints/0"})["decision"] == PUBLISH


def test_without_an_incumbent_the_smoke_test_reports_none():
    results, _ = _smoke({"endpoints/1": ["billing", "shipping", "x"], "base": ["no", "no", "x"]},
                        prompts=PROMPTS, base_model="base", incumbent_model=None)
    assert results["incumbent"] is None and results["incumbent_model"] is None
