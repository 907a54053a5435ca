#!/usr/bin/env bash
# The Airflow UI (http://localhost:8080) with the local Vertex service behind it, to trigger the
# tuning pipeline from its form. Airflow prints the admin password; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
source scripts/local-vertex.sh
start_local_vertex
airflow standalone
