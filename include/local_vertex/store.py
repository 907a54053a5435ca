"""Tuning jobs and their metrics in SQLite (WAL), shared by the API process and the workers.

The job row holds the Vertex TuningJob resource as JSON (what clients see) next to the
service's own bookkeeping (worker pid, resume count, where the adapter is). Every change is a
read-modify-write inside `BEGIN IMMEDIATE`, so a cancel from the API and a state change from a
worker never overwrite each other.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson

from include.local_vertex.timefmt import now_rfc3339

ACTIVE_STATES = ("JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_CANCELLING")
ENDED_STATES = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    project TEXT NOT NULL,
    location TEXT NOT NULL,
    state TEXT NOT NULL,
    resource TEXT NOT NULL,
    internal TEXT NOT NULL DEFAULT '{}',
    worker_pid INTEGER,
    resume_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS metrics (
    job_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    step INTEGER NOT NULL,
    wall_time TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (job_id, tag, step)
);
"""


@dataclass
class JobRecord:
    seq: int
    id: str
    project: str
    location: str
    resource: dict  # the TuningJob as clients see it (camelCase)
    internal: dict = field(default_factory=dict)  # datasetPins, resolvedBaseModel, adapterDir, stoppedCleanly
    worker_pid: int | None = None
    resume_count: int = 0

    @property
    def state(self) -> str:
        return self.resource["state"]

    def set_state(self, state: str, **fields) -> None:
        """Moves the job to `state`, stamping updateTime, and endTime when the job ends."""
        now = now_rfc3339()
        self.resource["state"] = state
        self.resource["updateTime"] = now
        if state in ENDED_STATES:
            self.resource.setdefault("endTime", now)
        self.resource.update(fields)


class JobStore:
    """One SQLite connection per thread; safe to share across threads and processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        with self._connect_new() as conn:
            conn.executescript(_SCHEMA)

    def _connect_new(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect_new()
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- jobs --------------------------------------------------------------------------------

    def insert(self, job_id: str, project: str, location: str, resource: dict,
               internal: dict | None = None) -> JobRecord:
        internal = internal or {}
        cur = self._conn.execute(
            "INSERT INTO jobs (id, project, location, state, resource, internal) VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, project, location, resource["state"], orjson.dumps(resource), orjson.dumps(internal)),
        )
        return JobRecord(cur.lastrowid, job_id, project, location, resource, internal)

    def get(self, job_id: str) -> JobRecord | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _record(row) if row else None

    def newest_first(self, project: str, location: str, before_seq: int | None = None) -> Iterator[JobRecord]:
        query = f"SELECT {_COLUMNS} FROM jobs WHERE project = ? AND location = ?"
        params: list = [project, location]
        if before_seq is not None:
            query += " AND seq < ?"
            params.append(before_seq)
        for row in self._conn.execute(query + " ORDER BY seq DESC", params).fetchall():
            yield _record(row)

    def in_states(self, states: Iterable[str]) -> list[JobRecord]:
        states = tuple(states)
        marks = ",".join("?" * len(states))
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY seq", states
        ).fetchall()
        return [_record(row) for row in rows]

    def state_counts(self) -> dict[str, int]:
        return dict(self._conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())

    def update(self, job_id: str, change: Callable[[JobRecord], bool | None]) -> JobRecord | None:
        """Applies `change` atomically; it returns False to leave the row untouched.

        Returns the record as written, or None when the job is missing or `change` declined.
        """
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                conn.execute("ROLLBACK")
                return None
            record = _record(row)
            if change(record) is False:
                conn.execute("ROLLBACK")
                return None
            conn.execute(
                "UPDATE jobs SET state = ?, resource = ?, internal = ?, worker_pid = ?, resume_count = ?"
                " WHERE id = ?",
                (
                    record.state,
                    orjson.dumps(record.resource),
                    orjson.dumps(record.internal),
                    record.worker_pid,
                    record.resume_count,
                    job_id,
                ),
            )
            conn.execute("COMMIT")
            return record
        except BaseException:  # a worker's stop signal may land anywhere here, even after COMMIT
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def transition(self, job_id: str, from_states: Iterable[str], to_state: str, **fields) -> JobRecord | None:
        """Moves a job to `to_state` only if it is still in one of `from_states`."""
        from_states = tuple(from_states)

        def change(record: JobRecord):
            if record.state not in from_states:
                return False
            record.set_state(to_state, **fields)

        return self.update(job_id, change)

    # -- metrics -----------------------------------------------------------------------------

    def add_metrics(self, job_id: str, step: int, values: dict[str, float], wall_time: str) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO metrics (job_id, tag, step, wall_time, value) VALUES (?, ?, ?, ?, ?)",
            [(job_id, tag, int(step), wall_time, float(value)) for tag, value in values.items()],
        )

    def metric_points(self, job_id: str, tag: str) -> list[tuple[int, str, float]]:
        return self._conn.execute(
            "SELECT step, wall_time, value FROM metrics WHERE job_id = ? AND tag = ? ORDER BY step",
            (job_id, tag),
        ).fetchall()


_COLUMNS = "seq, id, project, location, resource, internal, worker_pid, resume_count"


def _record(row) -> JobRecord:
    seq, job_id, project, location, resource, internal, worker_pid, resume_count = row
    return JobRecord(seq, job_id, project, location, orjson.loads(resource), orjson.loads(internal),
                     worker_pid, resume_count)
