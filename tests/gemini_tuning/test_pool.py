"""The tuning-jobs pool exists wherever Airflow runs: a starting component creates it, once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gemini_tuning.pool import DEFAULT_SLOTS, TUNING_JOBS_POOL
from tests.gemini_tuning.helpers import PROJECT_ROOT, copy_migrated_database

pytestmark = pytest.mark.slow


def _pool_row(database: Path) -> tuple[int, int] | None:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT slots, include_deferred FROM slot_pool WHERE pool = ?", (TUNING_JOBS_POOL,)).fetchone()


def test_a_starting_airflow_component_creates_the_pool_and_leaves_an_existing_one_as_set(tmp_path):
    database = tmp_path / "airflow.db"
    copy_migrated_database(database)
    with sqlite3.connect(database) as db:
        db.execute("DELETE FROM slot_pool WHERE pool = ?", (TUNING_JOBS_POOL,))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{database}",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")]),
    }

    def python(code: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    # What the scheduler, triggerer and dag-processor do first: build their Job, which calls the
    # plugin's listeners (loaded from the plugins folder, as in a real deployment).
    python("from airflow.jobs.job import Job; Job()")
    assert _pool_row(database) == (DEFAULT_SLOTS, 1)

    # An administrator's setting is kept; one that would not bound running jobs is called out.
    with sqlite3.connect(database) as db:
        db.execute("UPDATE slot_pool SET slots = 3, include_deferred = 0 WHERE pool = ?", (TUNING_JOBS_POOL,))
    checked = python("from gemini_tuning.pool import ensure_tuning_jobs_pool; print(ensure_tuning_jobs_pool())")
    assert f"pool {TUNING_JOBS_POOL} exists: 3 slot(s), NOT counting deferred tasks" in checked.stdout
    assert "does not bound running tuning jobs" in checked.stdout + checked.stderr
    assert _pool_row(database) == (3, 0)
