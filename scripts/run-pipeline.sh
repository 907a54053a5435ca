#!/usr/bin/env bash
# The main job: set everything up (idempotent), start the local Vertex service, run the tuning
# pipeline end to end on the sample data with the bundled SmolLM2 model, print a summary, and
# stop the service. An argument is JSON conf for the run, e.g. '{"epoch_sweep": [1, 2]}'.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
source scripts/local-vertex.sh
started=$(date +%s)
start_local_vertex

run_log="$AIRFLOW_HOME/main-job.log"
echo "running the gemini_supervised_tuning DAG end to end (task logs: $run_log)"
status=0
airflow dags test gemini_supervised_tuning --conf "${1:-{\}}" >"$run_log" 2>&1 || status=$?
python scripts/summarize_run.py --since "$started" --log "$run_log" || status=$?
exit "$status"
