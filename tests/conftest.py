"""Shared pytest set-up: the project's Airflow configuration and import paths, so that a plain
`pytest` behaves like `scripts/test.sh` (which sources scripts/env.sh first), and the fixtures
every area shares: a running local Vertex service and a standalone Airflow."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

for path in (PROJECT_ROOT, PROJECT_ROOT / "plugins"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

os.environ.setdefault("AIRFLOW_HOME", str(PROJECT_ROOT / ".airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(PROJECT_ROOT / "plugins"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

pytest_plugins = ["tests.fixtures.local_vertex", "tests.fixtures.airflow_standalone"]
