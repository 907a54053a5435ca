"""Load on the local Vertex service: generation throughput, then the API while a job trains.

Generation: 100 prompts to a tuned endpoint at temperature 0, sent one at a time and then 8 at a
time (the generation process batches the requests that wait); requests per second of each, the
ratio (goal: at least 5x), and whether every answer is the same both ways.

While a job trains: 200 concurrent get/list calls and 20 concurrent generateContent calls, all
at once; every one must be answered, none may fail.

The baseline is the same 200 get/list burst against the same service while it is idle (no
training, no generation), measured first in the same run; the ratio shows what training and
generation cost the API's latency. The load comes from aiohttp: httpx's AsyncClient spends about
ten times longer than the service on 200 concurrent calls here, and would measure itself.

    python tests/benchmarks/bench_service_load.py [--prompts 100] [--concurrency 8] [--max-tokens 16]
        [--requests 200] [--generations 20] [--rounds 3]

Each figure pools `--rounds` bursts (a single burst on a shared 2-core machine is noisy). The
first line names the machine, on which the ratio depends (see the README's Benchmarks section).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT))

import aiohttp  # noqa: E402

from tests.benchmarks.machine import describe  # noqa: E402
from tests.fixtures.local_vertex import LocalVertexService, chat_rows  # noqa: E402


def percentiles(latencies: list[float]) -> str:
    ordered = sorted(latencies)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return (f"n={len(ordered)} p50={pick(0.50):.0f} ms p90={pick(0.90):.0f} ms p99={pick(0.99):.0f} ms "
            f"max={ordered[-1] * 1000:.0f} ms")


async def timed(client: aiohttp.ClientSession, method: str, url: str, **kwargs) -> tuple[float, int]:
    started = time.perf_counter()
    async with client.request(method, url, **kwargs) as response:
        await response.read()
        return time.perf_counter() - started, response.status


def get_list_calls(client, service, job_names: list[str], count: int):
    jobs_url = f"/v1/{service.parent}/tuningJobs"
    calls = []
    for i in range(count):
        if i % 2:
            calls.append(timed(client, "GET", f"/v1/{job_names[i % len(job_names)]}"))
        else:
            calls.append(timed(client, "GET", jobs_url, params={"pageSize": "10", "filter": 'state!="JOB_STATE_FAILED"'}))
    return calls


def generation_calls(client, service, endpoint: str, count: int):
    body = {"contents": [{"role": "user", "parts": [{"text": "message 7: my billing question"}]}],
            "generationConfig": {"temperature": 0, "maxOutputTokens": 16}}
    targets = [f"/v1/{endpoint}:generateContent",
               f"/v1/{service.parent}/publishers/google/models/gemini-2.5-flash:generateContent"]
    return [timed(client, "POST", targets[i % 2], json=body) for i in range(count)]


async def burst(service, calls_factory) -> list[tuple[float, int]]:
    async with aiohttp.ClientSession(base_url=service.base_url, connector=aiohttp.TCPConnector(limit=400),
                                     timeout=aiohttp.ClientTimeout(total=300),
                                     headers={"Authorization": f"Bearer {service.token}"}) as client:
        return await asyncio.gather(*calls_factory(client))


async def prompts_at_a_time(service, endpoint: str, prompts: list[str], concurrency: int, max_tokens: int):
    """Answers to `prompts`, at most `concurrency` in flight; returns (answers, seconds)."""
    limit = asyncio.Semaphore(concurrency)

    async def one(client, prompt: str) -> str:
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}],
                "generationConfig": {"temperature": 0, "maxOutputTokens": max_tokens}}
        async with limit, client.post(f"/v1/{endpoint}:generateContent", json=body) as response:
            if response.status != 200:
                raise SystemExit(f"generateContent failed: {response.status} {await response.text()}")
            return (await response.json())["candidates"][0]["content"]["parts"][0]["text"]

    async with aiohttp.ClientSession(base_url=service.base_url, timeout=aiohttp.ClientTimeout(total=600),
                                     headers={"Authorization": f"Bearer {service.token}"}) as client:
        started = time.perf_counter()
        answers = await asyncio.gather(*(one(client, prompt) for prompt in prompts))
        return answers, time.perf_counter() - started


def generation_throughput(service, endpoint: str, count: int, concurrency: int, max_tokens: int) -> None:
    labels = ["billing", "technical", "account", "shipping"]
    prompts = [f"message {i}: my {labels[i % 4]} question" for i in range(count)]
    alone, alone_s = asyncio.run(prompts_at_a_time(service, endpoint, prompts, 1, max_tokens))
    together, together_s = asyncio.run(prompts_at_a_time(service, endpoint, prompts, concurrency, max_tokens))
    same = sum(a == b for a, b in zip(alone, together))
    print(f"{'generateContent, one at a time':<34} {count / alone_s:.2f} requests/s ({alone_s:.1f} s for {count})")
    print(f"{f'generateContent, {concurrency} at a time':<34} {count / together_s:.2f} requests/s "
          f"({together_s:.1f} s for {count})")
    print(f"{'throughput ratio':<34} {alone_s / together_s:.2f}x (goal >= 5x)")
    print(f"{'identical answers at temperature 0':<34} {same}/{count}")


def report(label: str, results: list[tuple[float, int]]) -> list[float]:
    failed = [status for _, status in results if status != 200]
    latencies = [seconds for seconds, _ in results]
    print(f"{label:<34} {percentiles(latencies)}  failed={len(failed)}")
    if failed:
        raise SystemExit(f"{label}: {len(failed)} calls failed with statuses {sorted(set(failed))}")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100, help="prompts for the generation throughput")
    parser.add_argument("--concurrency", type=int, default=8, help="prompts in flight at once (against 1)")
    parser.add_argument("--max-tokens", type=int, default=16, help="maxOutputTokens of each prompt")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="bursts per figure")
    parser.add_argument("--base-model", help="model folder (default: a tiny model built on the spot)")
    args = parser.parse_args()
    print(describe())  # a CPU's figures depend on it more than on the code: see machine.py

    with tempfile.TemporaryDirectory(prefix="bench-local-vertex-") as tmp:
        base_model = args.base_model
        if base_model is None:
            from include.tuning_engine.tiny import build_tiny_model

            base_model = str(build_tiny_model(Path(tmp) / "tiny"))
        service = LocalVertexService(Path(tmp) / "data", Path(base_model)).start()
        try:
            with service.http() as http:
                def create(uri: str, epochs: int) -> dict:
                    response = http.post(f"/v1/{service.parent}/tuningJobs", json={
                        "baseModel": "gemini-2.5-flash",
                        "supervisedTuningSpec": {"trainingDatasetUri": uri, "hyperParameters": {"epochCount": epochs}}})
                    response.raise_for_status()
                    return response.json()

                short = create(service.write_dataset("short.jsonl", chat_rows(16)), 1)
                short = service.wait_for_state(short["name"], {"JOB_STATE_SUCCEEDED"}, timeout_s=300)
                endpoint = short["tunedModel"]["endpoint"]
                names = [short["name"]]
                started = time.perf_counter()  # the generation process loads torch and the models on first use
                for target in (endpoint, f"{service.parent}/publishers/google/models/gemini-2.5-flash"):
                    http.post(f"/v1/{target}:generateContent", timeout=300,
                              json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).raise_for_status()
                print(f"{'first generateContent calls (warm-up)':<34} {time.perf_counter() - started:.1f} s")
                generation_throughput(service, endpoint, args.prompts, args.concurrency, args.max_tokens)

                asyncio.run(burst(service, lambda c: get_list_calls(c, service, names, args.requests)))  # warm-up
                idle = [result for _ in range(args.rounds) for result in
                        asyncio.run(burst(service, lambda c: get_list_calls(c, service, names, args.requests)))]
                idle_latencies = report("get/list, idle (baseline)", idle)

                long = create(service.write_dataset("long.jsonl", chat_rows(80)), 100)
                service.wait_for_state(long["name"], {"JOB_STATE_RUNNING"}, timeout_s=300)
                while not http.get(f"/v1/{long['experiment']}/runs/train/timeSeries/train_total_loss:read"
                                   ).json()["timeSeriesData"]["values"]:
                    time.sleep(0.1)
                names.append(long["name"])

                async def loaded(client):
                    return await asyncio.gather(
                        asyncio.gather(*get_list_calls(client, service, names, args.requests)),
                        asyncio.gather(*generation_calls(client, service, endpoint, args.generations)))

                api, generated, walls = [], [], []
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    round_api, round_generated = asyncio.run(burst(service, lambda c: [loaded(c)]))[0]
                    walls.append(time.perf_counter() - started)
                    api += round_api
                    generated += round_generated
                state = http.get(f"/v1/{long['name']}").json()["state"]
                loaded_latencies = report("get/list, training + generating", api)
                report("generateContent, while training", generated)
                print(f"{'job state after the bursts':<34} {state} (the job trained throughout)")
                print(f"{'one burst, wall time':<34} {statistics.median(walls):.2f} s (median) for "
                      f"{args.requests + args.generations} calls")
                print(f"{'p50 ratio loaded/idle':<34} "
                      f"{statistics.median(loaded_latencies) / statistics.median(idle_latencies):.2f}x")
                http.post(f"/v1/{long['name']}:cancel")
        finally:
            service.stop()


if __name__ == "__main__":
    main()
