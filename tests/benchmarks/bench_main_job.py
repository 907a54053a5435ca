"""Run the main job (scripts/run-pipeline.sh) and print where its time goes (target: under 4 min).

The pipeline runs end to end on the local service as the README's main job does; then the
breakdown comes from what the run recorded:
- Airflow: each task instance's duration, and Airflow's own time between tasks (the run's span
  not covered by any task), before the run (service start, `airflow dags test` start-up) and after;
- the tuning job: its worker's log (start-up, tokenizing, model loading, training steps,
  evaluation, the rest), as the trainer writes it at the end of a run;
- generation: the generation process's lines in the service log (model and adapter loading,
  each decoded request; requests decoded together overlap, so the decoding time is their union).
Set-up (the virtualenv, the database, converting the bundled model) is done first and not counted.

    source scripts/env.sh
    python tests/benchmarks/bench_main_job.py [--conf '{"epoch_sweep": [2]}'] [--ports 8890]
    python tests/benchmarks/bench_main_job.py --no-run   # the breakdown of the last run only
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "gemini_supervised_tuning"
TARGET_S = 240.0
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")  # Python logging's asctime
SPENT = re.compile(r"time spent: (.*)")
THREADS = re.compile(r"threads: (\d+ threads?: .*)")
PHASE = re.compile(r"([a-z][a-z ]*?) ([\d.]+) s")
DECODED = re.compile(r"decoded request \S+ \((\d+) rows, (\d+) tokens\) in ([\d.]+) s, in a batch of up to (\d+) rows")
LOADED = re.compile(r"(loaded .*?) in ([\d.]+) s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conf", default="{}", help="JSON conf of the run, as run-pipeline.sh takes it")
    parser.add_argument("--ports", type=int, help="the service's port (and the storage emulator's, the next one)")
    parser.add_argument("--no-run", action="store_true", help="only print the breakdown of the last run")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.ports:  # and let scripts/env.sh derive the addresses from them again
        env |= {"LOCAL_VERTEX_PORT": str(args.ports), "LOCAL_VERTEX_STORAGE_PORT": str(args.ports + 1)}
        for derived in ("STORAGE_EMULATOR_HOST", "AIRFLOW_CONN_GEMINI_TUNING_DEFAULT"):
            env.pop(derived, None)
    data_dir = Path(env.get("LOCAL_VERTEX_DATA", PROJECT_ROOT / ".local_vertex"))

    print(f"load before: {_load()}")
    marks: dict[str, float] = {}
    if not args.no_run:
        subprocess.run([str(PROJECT_ROOT / "scripts" / "setup.sh")], check=True, env=env, stdout=subprocess.DEVNULL)
        # The bundled model is converted on a machine's first run (about 30 s): set-up, not the job.
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        "from include.tuning_engine.models import ensure_smollm2; ensure_smollm2(Path(sys.argv[1]))",
                        str(data_dir / "models")], check=True, env=env, cwd=PROJECT_ROOT)
        marks = run_main_job(args.conf, env)
        print(f"load after: {_load()}")
    dag_run, tasks = task_instances()
    print_airflow(marks, dag_run, tasks)
    worker_log = newest(data_dir / "jobs", "*/worker.log", since=dag_run["start"])
    if worker_log:
        print_tuning_job(worker_log)
    print_generation(data_dir / "service.log")
    if marks:
        wall = marks["end"] - marks["start"]
        verdict = "meets" if wall < TARGET_S else "MISSES"
        print(f"\nmain job end to end: {wall:.0f} s; {verdict} the {TARGET_S:.0f} s target (load {_load()})")
        return 0 if marks.get("status") == 0 and wall < TARGET_S else 1
    return 0


def run_main_job(conf: str, env: dict) -> dict[str, float]:
    """Runs scripts/run-pipeline.sh, echoing its output; when it started, when the service was
    up (its "running the ... DAG" line), when it ended, and its exit status."""
    marks = {"start": time.time()}
    proc = subprocess.Popen([str(PROJECT_ROOT / "scripts" / "run-pipeline.sh"), conf], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in proc.stdout:
        if line.startswith("running the") and "service_up" not in marks:
            marks["service_up"] = time.time()
        print(f"  | {line}", end="", flush=True)
    marks["status"] = proc.wait()
    marks["end"] = time.time()
    return marks


def task_instances() -> tuple[dict, list[dict]]:
    """The newest run of the DAG and its task instances, from Airflow's metadata database."""
    from sqlalchemy import select

    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == DAG_ID)
                              .order_by(DagRun.start_date.desc()).limit(1)).first()
        if run is None:
            sys.exit(f"no run of {DAG_ID} in the metadata database")
        rows = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == DAG_ID,
                                                          TaskInstance.run_id == run.run_id)).all()
        tasks = [{"task": ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""), "state": str(ti.state),
                  "start": _epoch(ti.start_date), "end": _epoch(ti.end_date)} for ti in rows]
        return {"run_id": run.run_id, "state": str(run.state), "start": _epoch(run.start_date),
                "end": _epoch(run.end_date)}, sorted(tasks, key=lambda t: (t["start"] or 0, t["task"]))


def print_airflow(marks: dict, dag_run: dict, tasks: list[dict]) -> None:
    print(f"\n=== Airflow: run {dag_run['run_id']} ({dag_run['state']}) ===")
    ran = [t for t in tasks if t["start"] and t["end"]]
    origin = dag_run["start"]
    print(f"{'task':32s} {'state':10s} {'starts at':>10s} {'duration':>10s}")
    for t in tasks:
        if t in ran:
            print(f"{t['task']:32s} {t['state']:10s} {t['start'] - origin:8.1f} s {t['end'] - t['start']:8.1f} s")
        else:
            print(f"{t['task']:32s} {t['state']:10s} {'-':>10s} {'-':>10s}")
    span = (dag_run["end"] or max(t["end"] for t in ran)) - origin
    covered = union_seconds([(t["start"], t["end"]) for t in ran])
    print(f"the run's span {span:.1f} s: tasks running {covered:.1f} s, Airflow between tasks {span - covered:.1f} s "
          f"({(span - covered) / span:.0%})")
    if marks:
        before = origin - marks["service_up"]
        print(f"before the run: service start and tokenizer {marks['service_up'] - marks['start']:.1f} s, "
              f"`airflow dags test` start-up and DAG parse {before:.1f} s; "
              f"after it (summary, service stop) {marks['end'] - (dag_run['end'] or origin + span):.1f} s")


def print_tuning_job(worker_log: Path) -> None:
    lines = worker_log.read_text(errors="replace").splitlines()
    stamps = [_stamp(line) for line in lines if _stamp(line)]
    print(f"\n=== the tuning job ({worker_log.parent.name}): {stamps[-1] - stamps[0]:.1f} s in its worker ===")
    started = next((_stamp(line) for line in lines if "tokenizing the tuning data" in line), None)
    if started:
        print(f"worker start-up (imports, fetching the data, resolving the model) {started - stamps[0]:.1f} s")
    spent = next((m.group(1) for line in lines if (m := SPENT.search(line))), None)
    if spent:
        for name, seconds in PHASE.findall(spent):
            print(f"{name:28s} {float(seconds):8.1f} s")
    steps = [float(m.group(1)) for line in lines if (m := re.search(r"step \d+/\d+ .*\| (\d+) ms", line))]
    if steps:
        print(f"{len(steps)} steps: median {sorted(steps)[len(steps) // 2]:.0f} ms")
    threads = next((m.group(1) for line in lines if (m := THREADS.search(line))), None)
    if threads:
        print(f"thread counts: {threads}")


def print_generation(service_log: Path) -> None:
    if not service_log.exists():
        return
    lines = [line for line in service_log.read_text(errors="replace").splitlines() if "generation:" in line]
    loads = [(m.group(1), float(m.group(2))) for line in lines if (m := LOADED.search(line))]
    decoded = [(_stamp(line), *map(float, m.groups())) for line in lines if (m := DECODED.search(line))]
    print(f"\n=== generation process: {len(decoded)} requests decoded ===")
    for what, seconds in loads:
        print(f"{what:44s} {seconds:8.1f} s")
    if decoded:
        rows, tokens = sum(d[1] for d in decoded), sum(d[2] for d in decoded)
        seconds = union_seconds([(end - spent, end) for end, _, _, spent, _ in decoded if end is not None])
        print(f"decoding {len(decoded)} requests ({int(rows)} rows, {int(tokens)} tokens) {seconds:8.1f} s: "
              f"{len(decoded) / seconds:.1f} requests/s, {tokens / seconds:.0f} tokens/s, "
              f"batches of up to {int(max(d[4] for d in decoded))} rows")


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def newest(folder: Path, pattern: str, since: float) -> Path | None:
    found = [path for path in folder.glob(pattern) if path.stat().st_mtime >= since]
    return max(found, key=lambda path: path.stat().st_mtime, default=None)


def _stamp(line: str) -> float | None:
    match = STAMP.match(line)
    if not match:
        return None
    # asctime is local time
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _epoch(moment: datetime | None) -> float | None:
    return moment.astimezone(timezone.utc).timestamp() if moment else None


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
