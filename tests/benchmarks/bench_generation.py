"""The smoke test's generation: 100 held-out prompts on SmolLM2, batched vs one at a time (goal:
100 prompts under 30 s for each model).

The prompts and settings are the main job's (the shipped held-out prompts, temperature 0, 16
output tokens). The baseline, measured first in the same run, answers them one request at a time;
then the same prompts go in batches as the generation process forms them from concurrent
requests. The answers must be the same, in bf16 too: no neighbour changes a row's numbers (the
count of identical answers is printed; see include/tuning_engine/decoding.py). CPU seconds are
printed beside wall seconds, as the machine may be shared; the first line names the machine.
With --adapter (a tuned adapter folder, e.g. a main job's `.local_vertex/jobs/<id>/adapter`), the
tuned model is measured too.

    source scripts/env.sh
    python tests/benchmarks/bench_generation.py [--prompts 100] [--batch 16] [--baseline-prompts 16]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HELDOUT = PROJECT_ROOT / "include" / "sample_data" / "classification" / "heldout.jsonl"
GOAL_S = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--batch", type=int, default=16, help="requests decoded together")
    parser.add_argument("--baseline-prompts", type=int, default=16, help="prompts answered one at a time")
    parser.add_argument("--max-output-tokens", type=int, default=16)
    parser.add_argument("--adapter", type=Path, help="a tuned adapter folder, to measure the tuned model too")
    parser.add_argument("--models-dir", type=Path, default=PROJECT_ROOT / ".local_vertex" / "models")
    args = parser.parse_args()

    from include.tuning_engine.generation import Generator
    from include.tuning_engine.models import resolve_base_model
    from tests.benchmarks.machine import describe

    base = resolve_base_model("smollm2", args.models_dir)
    records = [json.loads(line) for line in HELDOUT.read_text().splitlines() if line.strip()][: args.prompts]
    requests = [{**record, "contents": record["contents"][:-1],
                 "generationConfig": {"temperature": 0, "maxOutputTokens": args.max_output_tokens}}
                for record in records]
    print(f"{describe()}; load {_load()}; {len(requests)} prompts, batches of {args.batch}")
    generator = Generator()
    for label, adapter in (("base", None), ("tuned", args.adapter)):
        if label == "tuned" and adapter is None:
            continue
        generator.generate(base, adapter, requests[0])  # loads the model (and adapter): not timed
        baseline = requests[: args.baseline_prompts]
        started = time.perf_counter()
        alone = [generator.generate(base, adapter, request) for request in baseline]
        alone_s = time.perf_counter() - started
        started, cpu_started = time.perf_counter(), time.process_time()
        batched = []
        for first in range(0, len(requests), args.batch):
            batched += generator.generate_batch([(base, adapter, request) for request in requests[first:first + args.batch]])
        batched_s, batched_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        same = sum(_text(a) == _text(b) for a, b in zip(alone, batched))
        tokens = sum(b["usageMetadata"]["candidatesTokenCount"] for b in batched)
        alone_rate, batched_rate = len(alone) / alone_s, len(requests) / batched_s
        verdict = "meets" if batched_s * 100 / len(requests) < GOAL_S else "MISSES"
        print(f"{label}: one at a time {alone_rate:.2f} prompts/s ({len(alone)} prompts); batched "
              f"{batched_rate:.2f} prompts/s, {tokens} tokens in {batched_s:.1f} s ({batched_cpu_s:.1f} s of CPU); "
              f"ratio {batched_rate / alone_rate:.1f}x; 100 prompts in {100 / batched_rate:.1f} s ({verdict} the "
              f"{GOAL_S:.0f} s goal); same answers: {same} of {len(alone)}; "
              f"load {_load()}", flush=True)


def _text(response: dict) -> str:
    return response["candidates"][0]["content"]["parts"][0]["text"]


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
