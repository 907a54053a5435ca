"""Helpers of the gemini_tuning tests: a task's context, what it pushed, waiting for a job, a database."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from pathlib import Path
from unittest import mock

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT_ROOT / "include" / "sample_data" / "classification"


def sample_lines(name: str, count: int) -> list[str]:
    """The first lines of a file of the classification sample set."""
    return (SAMPLE / name).read_text(encoding="utf-8").splitlines()[:count]


def task_context(dag_id: str = "tuning_tests", run_id: str | None = None, task_id: str = "create", try_number: int = 1):
    """The part of a task's context these operators use: the task instance's identity and XCom push."""
    ti = mock.MagicMock(
        dag_id=dag_id, run_id=run_id or f"manual__{uuid.uuid4()}", task_id=task_id, map_index=-1, try_number=try_number
    )
    return {"ti": ti}


def pushed(context) -> dict:
    """What the task pushed to XCom, by key."""
    return {c.kwargs["key"]: c.kwargs["value"] for c in context["ti"].xcom_push.call_args_list}


def wait_for_state(hook, job_name: str, states: set[str], timeout: float = 120) -> str:
    from gemini_tuning.jobs import job_state

    deadline = time.monotonic() + timeout
    while True:
        state = job_state(hook.get_tuning_job(job_name))
        if state in states or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def copy_migrated_database(destination: Path) -> None:
    """A consistent copy of the project's migrated Airflow database (SQLite's backup API)."""
    source = Path(os.environ.get("AIRFLOW_HOME", PROJECT_ROOT / ".airflow")) / "airflow.db"
    if not source.exists():
        pytest.fail(f"{source} is missing: run scripts/setup.sh first (it migrates the Airflow database)")
    with sqlite3.connect(source) as src, sqlite3.connect(destination) as dst:
        src.backup(dst)
