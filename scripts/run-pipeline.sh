#!/usr/bin/env bash
# The main job: set everything up (idempotent), then run the tuning pipeline end to end on the
# local default backend.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
airflow dags test gemini_supervised_tuning
