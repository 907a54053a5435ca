#!/usr/bin/env bash
# The Airflow UI (http://localhost:8080) with the local Vertex service behind it, to trigger the
# tuning pipeline from its form. Airflow prints the admin password; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
source scripts/local-vertex.sh
start_local_vertex

# `airflow standalone` stops its components on SIGINT but can then stay itself, with its
# children as zombies, and ignore further SIGINTs. So it runs in a process group of its own (out
# of the terminal's reach), and Ctrl-C here stops that group: SIGINT, then SIGTERM, then SIGKILL.
setsid airflow standalone &
airflow_group=$!

group_alive() {  # any process of the group that is not a zombie
  ps -eo pgid=,stat= | awk -v group="$airflow_group" '$1 == group && $2 !~ /^Z/ {found = 1} END {exit !found}'
}

stop_airflow() {
  local signal tick
  for signal in INT TERM KILL; do
    kill -s "$signal" -- "-$airflow_group" 2>/dev/null || return 0
    for tick in $(seq 25); do  # 5 s each
      group_alive || return 0
      sleep 0.2
    done
  done
}

trap 'echo "stopping Airflow and the local Vertex service"; stop_airflow; exit 130' INT TERM
status=0
wait "$airflow_group" || status=$?
stop_airflow  # standalone ended on its own: leave none of its children behind
exit "$status"
