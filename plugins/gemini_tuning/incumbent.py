"""
Champion and challenger: the model in use (the incumbent) and whether a new one replaces it.

The record of "current" is the newest event of the `gemini_tuned_model` Asset: the pipeline
emits one only when it publishes a model, every consumer already reads that Asset, and a task
reads it through the task SDK (``inlet_events``) on Vertex and on the local service alike. A run
that keeps the incumbent emits nothing, so the record stays as it was.

Runs may overlap, so a run's verdict holds only while the record still names the incumbent it
challenged: a model another run published meanwhile was never compared, and is not replaced.
"""

from __future__ import annotations

from typing import Any

PUBLISH, KEEP = "publish", "keep_incumbent"
# Answers shown side by side in the approval request.
ANSWERS_SHOWN = 5


def incumbent_from_event(extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """The incumbent as the smoke test and the next tuning need it, from a publish event's extra."""
    if not extra or not extra.get("endpoint"):
        return None
    return {key: extra.get(key) for key in ("model", "endpoint", "tuning_job", "smoke_test_score")}


def superseded(challenged_endpoint: str | None, current: dict[str, Any] | None) -> str | None:
    """Why a verdict no longer holds: the current model is not the one challenged (else None)."""
    current_endpoint = current and current["endpoint"]
    if current_endpoint == challenged_endpoint:
        return None
    return (f"the current model changed while this run ran (it challenged {challenged_endpoint or 'no incumbent'}, "
            f"the current one is {current and current['model'] or 'none'}), so this one was not compared with it: "
            "run again to challenge it")


def verdict(results: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """
    Publish or keep the incumbent, from the smoke test's results (challenger, incumbent, base
    scored on the same prompts with the same generation settings) and the current model now.

    The challenger wins ties: at equal quality the newer data is worth having. Without an
    incumbent it wins (the smoke test's own gate compares it with the base model). When either
    score is unknown (no prompt had an expected answer) nothing shows it is better: keep.
    """
    scores = {role: (results.get(role) or {}).get("score") for role in ("tuned", "incumbent", "base")}
    challenger, incumbent = scores["tuned"], scores["incumbent"]
    changed = superseded(results.get("incumbent_model"), current)
    if changed:
        decision, reason = KEEP, changed
    elif results.get("incumbent") is None:
        decision, reason = PUBLISH, "no incumbent: the first published model"
    elif challenger is None or incumbent is None:
        decision, reason = KEEP, "no prompt with an expected answer, so the challenger cannot be shown to be as good"
    elif challenger >= incumbent:
        decision, reason = PUBLISH, f"challenger {challenger:.3f} >= incumbent {incumbent:.3f}"
    else:
        decision, reason = KEEP, f"challenger {challenger:.3f} < incumbent {incumbent:.3f}"
    return {
        "decision": decision,
        "reason": reason,
        "scores": {"challenger": challenger, "incumbent": incumbent, "base": scores["base"]},
        "challenger_model": results["model"],
        "incumbent_model": results.get("incumbent_model"),
    }


def _cell(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def approval_body(decided: dict[str, Any], examples: list[dict[str, Any]]) -> str:
    """Markdown for the approval request: the three scores and a few answers side by side."""
    scores = decided["scores"]
    lines = [
        f"**Challenger** `{decided['challenger_model']}`: {_score(scores['challenger'])}  ",
        f"**Incumbent** `{decided['incumbent_model'] or 'none'}`: {_score(scores['incumbent'])}  ",
        f"**Base model**: {_score(scores['base'])}  ",
        f"Verdict: {decided['reason']}.",
        "",
        "| Prompt | Expected | Challenger | Incumbent | Base |",
        "|---|---|---|---|---|",
    ]
    for example in examples[:ANSWERS_SHOWN]:
        row = (example["prompt"], example["expected"], example["tuned_answer"], example.get("incumbent_answer"),
               example.get("base_answer"))
        lines.append("| " + " | ".join(_cell(cell) for cell in row) + " |")
    return "\n".join(lines)
