# Source this file to work with the project's Airflow and local Vertex service from a shell:
#   source scripts/env.sh
# Everything lives inside the project: nothing is written to the user's home.
PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PROJECT_ROOT
export AIRFLOW_HOME="$PROJECT_ROOT/.airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$PROJECT_ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$PROJECT_ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-4}
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=${AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG:-4}
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}
export AIRFLOW__CORE__UNIT_TEST_MODE=${AIRFLOW__CORE__UNIT_TEST_MODE:-False}
# include/ is importable as a package (the local service, sample data), plugins/ as in Airflow.
export PYTHONPATH="$PROJECT_ROOT:$PROJECT_ROOT/plugins${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$PROJECT_ROOT/.venv/bin:$PATH"

# The backend. "local" (the default) points the pipeline at the project's local Vertex service and
# its Cloud Storage emulator; anything else leaves the connections to you (see README, "Vertex AI").
export GEMINI_TUNING_BACKEND=${GEMINI_TUNING_BACKEND:-local}
export LOCAL_VERTEX_DATA=${LOCAL_VERTEX_DATA:-$PROJECT_ROOT/.local_vertex}
export LOCAL_VERTEX_PORT=${LOCAL_VERTEX_PORT:-8790}
export LOCAL_VERTEX_STORAGE_PORT=${LOCAL_VERTEX_STORAGE_PORT:-8791}
# Folders whose files file:// dataset URIs may name (the service's own data dir and .airflow/ are
# never among them), separated by ':'.
export LOCAL_VERTEX_DATA_ROOTS=${LOCAL_VERTEX_DATA_ROOTS:-$PROJECT_ROOT/include/sample_data:$PROJECT_ROOT/data}
if [ "$GEMINI_TUNING_BACKEND" = local ]; then
  # The service's token: random, one per data folder, readable by this user only.
  if [ -z "${LOCAL_VERTEX_TOKEN:-}" ]; then
    if [ ! -s "$LOCAL_VERTEX_DATA/token" ]; then
      mkdir -p "$LOCAL_VERTEX_DATA"
      (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$LOCAL_VERTEX_DATA/token.$$" &&
        mv "$LOCAL_VERTEX_DATA/token.$$" "$LOCAL_VERTEX_DATA/token")
    fi
    chmod 600 "$LOCAL_VERTEX_DATA/token"
    LOCAL_VERTEX_TOKEN=$(cat "$LOCAL_VERTEX_DATA/token")
  fi
  export LOCAL_VERTEX_TOKEN
  export STORAGE_EMULATOR_HOST=${STORAGE_EMULATOR_HOST:-http://127.0.0.1:$LOCAL_VERTEX_STORAGE_PORT}
  export GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false
  export AIRFLOW_CONN_GEMINI_TUNING_DEFAULT=${AIRFLOW_CONN_GEMINI_TUNING_DEFAULT:-"{\"conn_type\": \"google_cloud_platform\", \"password\": \"$LOCAL_VERTEX_TOKEN\", \"extra\": {\"project\": \"local-project\", \"location\": \"us-central1\", \"base_url\": \"http://127.0.0.1:$LOCAL_VERTEX_PORT\"}}"}
  export AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT=${AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT:-'{"conn_type": "google_cloud_platform", "extra": {"project": "local-project", "is_anonymous": true}}'}
fi
