"""Print what a run of the tuning pipeline produced, from its archive (the main job's last step).

    python scripts/summarize_run.py --since EPOCH_SECONDS [--log RUN_LOG]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = PROJECT_ROOT / ".archive" / "gemini_supervised_tuning"


def newest_summary(since: float) -> Path | None:
    summaries = [p for p in ARCHIVE.glob("*/summary.json") if p.stat().st_mtime >= since]
    return max(summaries, key=lambda p: p.stat().st_mtime, default=None)


def failed_tasks(log: Path) -> list[str]:
    """Tasks whose last state update before their `[DAG TEST] end task` line was a failure."""
    failed, last_failed = [], False
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        if "new_state=" in line:
            last_failed = "new_state=failed" in line
        elif (ended := re.search(r"\[DAG TEST\] end task task_id=(\w+)", line)) and last_failed:
            failed.append(ended.group(1))
            last_failed = False
    return sorted(set(failed))


def score(part: dict | None) -> str:
    if not part or part.get("score") is None:
        return "n/a"
    return f"{part['score']:.0%} ({part['correct']}/{part['scored']})"


def print_summary(path: Path, elapsed: float) -> None:
    summary = json.loads(path.read_text())
    job, finals, smoke = summary["job"], summary["final_metrics"], summary.get("smoke_test") or {}
    hyper = summary.get("hyperparameters", {})
    run = summary.get("run_summary") or {}
    recommendation = run.get("recommendation") or {}

    def final(metric: str) -> str:
        return f"{finals[metric]['value']:.4f}" if metric in finals else "n/a"

    print("\n=== Tuning pipeline: summary ===")
    print(f"tuning job       {job['name']}")
    print(f"state            {job['state']}")
    print(f"tuned model      {job.get('tunedModel', {}).get('endpoint', 'n/a')}")
    print(f"epochs used      {hyper.get('epochCount')}  (adapter {hyper.get('adapterSize')}, "
          f"lr multiplier {hyper.get('learningRateMultiplier')})")
    if (champion := run.get("champion") or {}).get("checkpoint_id") is not None:
        print(f"checkpoint       {champion['checkpoint_id']} of {len(summary.get('checkpoints', []))} "
              f"(epoch {champion['epoch']}, step {champion['step']}), served on the main endpoint: {champion['reason']}")
    for reason in recommendation.get("reasons", []):
        print(f"recommendation   {reason}")
    if estimate := recommendation.get("estimate"):
        cost = f"${estimate['cost_usd']:,.2f}" if estimate.get("cost_usd") is not None else "no price known"
        time_taken = f", about {estimate['seconds'] / 60:,.1f} min" if estimate.get("seconds") is not None else ""
        print(f"estimate         {estimate['billable_tokens']:,} billable tokens, {cost}{time_taken} "
              f"(prices as of {estimate['price_table_as_of']})")
    print(f"final loss       train {final('/train_total_loss')}, eval {final('/eval_total_loss')}")
    print(f"smoke test       tuned {score(smoke.get('tuned'))}  vs  base {score(smoke.get('base'))}")
    answers = path.with_name("smoke_test.json")
    examples = json.loads(answers.read_text()).get("examples", []) if answers.exists() else []
    for example in examples[:5]:
        print(f"  {example['prompt'][:70]!r}\n    expected {example.get('expected')!r}, tuned {example['tuned_answer']!r}"
              f", base {example.get('base_answer', '')[:40]!r}")
    print(f"archive          {path.parent}  (curves.png, metrics.parquet/.csv, summary.json, "
          "smoke_test.json, dataset_report/)")
    print(f"end to end       {elapsed / 60:.1f} min")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--since", type=float, required=True, help="only runs archived after this time")
    parser.add_argument("--log", type=Path, help="the run's log, to name failed tasks")
    args = parser.parse_args()
    elapsed = time.time() - args.since
    path = newest_summary(args.since)
    if path is None:
        failed = failed_tasks(args.log) if args.log else []
        print(f"\nThe run archived nothing after {elapsed / 60:.1f} min; failed tasks: {', '.join(failed) or 'see the log'}")
        if args.log:
            print(f"log: {args.log}")
        return 1
    print_summary(path, elapsed)
    print("\nThe same DAG in the Airflow UI: ./scripts/airflow-ui.sh, then http://localhost:8080, "
          "DAG gemini_supervised_tuning, Trigger (the form holds every setting).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
