#!/usr/bin/env bash
# Airflow's distributed shape on one machine, each part its own process, as docker-compose.yaml
# describes it: PostgreSQL (Airflow's database and Celery's results), Redis (Celery's broker), the
# api-server, scheduler, dag-processor, triggerer, two Celery workers, and the local Vertex service.
#
#   scripts/airflow-distributed.sh start [NAME...]   start all (or the named parts) and wait until they answer
#   scripts/airflow-distributed.sh stop [NAME...]    stop all (or the named parts)
#   scripts/airflow-distributed.sh status            which parts run, and where
#   scripts/airflow-distributed.sh run [CONF]        start, run the tuning pipeline once on SmolLM2, summarize, stop
#
# NAME: postgres redis local-vertex api-server scheduler dag-processor triggerer worker-a worker-b.
# Everything lives in $AIRFLOW_DISTRIBUTED_ROOT (default <project>/.distributed): the database
# folder, Airflow's home and logs, the service's data, the processes' pids and logs, and the ports,
# chosen free at the first start and kept. Loopback only. Each worker runs in its own UTS namespace
# under its own host name (as a container would) where unshare allows it. Airflow's parts are
# restarted when they exit (as `restart: always` in the compose file), e.g. on a database restart.
#
# Settings from the environment: LOCAL_VERTEX_TOKEN (the service's token, by environment only),
# LOCAL_VERTEX_BASE_MODEL (a model folder instead of the bundled SmolLM2), LOCAL_VERTEX_MAX_CONCURRENT_JOBS,
# AIRFLOW_DISTRIBUTED_WORKER_CONCURRENCY (task slots per worker, default 2), AIRFLOW_CONN_* and
# AIRFLOW_VAR_* as everywhere in the project.
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT_ROOT=$PWD
ROOT=${AIRFLOW_DISTRIBUTED_ROOT:-$PROJECT_ROOT/.distributed}
RUN=$ROOT/run
LOGS=$ROOT/logs
PGDATA=$ROOT/postgres
ALL=(postgres redis local-vertex api-server scheduler dag-processor triggerer worker-a worker-b)

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The ports: kept in $ROOT/ports.env so that a part restarted later finds the others; on the first
# start a port set in the environment is kept, any other is chosen free.
load_ports() {
  mkdir -p "$RUN" "$LOGS"
  if [ -f "$ROOT/ports.env" ]; then
    source "$ROOT/ports.env"
  else
    PG_PORT=$(free_port) REDIS_PORT=$(free_port) API_PORT=${AIRFLOW__API__PORT:-$(free_port)}
    LOCAL_VERTEX_PORT=${LOCAL_VERTEX_PORT:-$(free_port)} LOCAL_VERTEX_STORAGE_PORT=${LOCAL_VERTEX_STORAGE_PORT:-$(free_port)}
    for port in PG_PORT REDIS_PORT API_PORT LOCAL_VERTEX_PORT LOCAL_VERTEX_STORAGE_PORT; do echo "$port=${!port}"; done >"$ROOT/ports.env"
  fi
  export LOCAL_VERTEX_PORT LOCAL_VERTEX_STORAGE_PORT
}

shape_env() {
  load_ports
  export LOCAL_VERTEX_DATA=$ROOT/local_vertex
  source scripts/env.sh
  local db="airflow@127.0.0.1:$PG_PORT/airflow"
  export AIRFLOW_HOME=$ROOT/airflow
  export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://$db
  export AIRFLOW__CELERY__RESULT_BACKEND=db+postgresql+psycopg2://$db
  export AIRFLOW__CELERY__BROKER_URL=redis://127.0.0.1:$REDIS_PORT/0
  export AIRFLOW__CELERY__WORKER_CONCURRENCY=${AIRFLOW_DISTRIBUTED_WORKER_CONCURRENCY:-2}
  export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$API_PORT AIRFLOW__API__WORKERS=1
  export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$API_PORT/execution/
  # Every process signs and checks the execution API's tokens with the same secret.
  [ -f "$ROOT/jwt_secret" ] || (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$ROOT/jwt_secret")
  AIRFLOW__API_AUTH__JWT_SECRET=$(cat "$ROOT/jwt_secret")
  export AIRFLOW__API_AUTH__JWT_SECRET
  # Loopback only, so every user of the UI and REST API is an admin (no login), as in `airflow standalone`.
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True
  # A task instance records the host name of the worker that ran it (no DNS look-up).
  export AIRFLOW__CORE__HOSTNAME_CALLABLE=socket.gethostname
  # A worker that vanished is noticed within a minute (Airflow's default is 5) and its task retried.
  export AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=${AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT:-60}
  export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-10}
  export AIRFLOW_VAR_GEMINI_TUNING_ARCHIVE_URI=${AIRFLOW_VAR_GEMINI_TUNING_ARCHIVE_URI:-file://$PROJECT_ROOT/.archive}
}

pid_of() { cat "$RUN/$1.pid" 2>/dev/null; }
running() { local pid; pid=$(pid_of "$1") && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

# Start a part in its own session (its own process group), so that it is stopped or killed whole.
launch() {
  local name=$1; shift
  if running "$name"; then echo "$name: already running (pid $(pid_of "$name"))"; rm -f "$RUN/$name.logstart"; return; fi
  { wc -c <"$LOGS/$name.log"; } 2>/dev/null >"$RUN/$name.logstart" || echo 0 >"$RUN/$name.logstart"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
  LAUNCHED+=("$name")
}
LAUNCHED=()

# Airflow's parts run under `restart: always`, as in the compose file: the scheduler, triggerer and
# dag-processor exit when they lose the database (a PostgreSQL restart) and must come back by
# themselves once it answers. Stopping or killing a part's process group ends its loop too.
RESTART_ALWAYS='while :; do "$@"; echo "$0 exited with status $?: starting it again in 5 s (restart: always)"; sleep 5; done'

# Wait until a check passes, failing at once when the part's process has exited.
wait_for() {
  local name=$1 what=$2; shift 2
  local deadline=$((SECONDS + ${AIRFLOW_DISTRIBUTED_START_TIMEOUT:-300}))
  until "$@" >/dev/null 2>&1; do
    if [ "$name" != postgres ] && { ! running "$name" || restarted_since_launch "$name"; }; then
      echo "$name exited before $what; the end of $LOGS/$name.log:" >&2; tail -30 "$LOGS/$name.log" >&2; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "$name: no $what within ${AIRFLOW_DISTRIBUTED_START_TIMEOUT:-300} s; see $LOGS/$name.log" >&2; return 1
    fi
    sleep 1
  done
}

# A part launched by this command that exited (and is being restarted) before it answered has
# failed to start: that is reported at once, not waited out.
restarted_since_launch() {
  local start
  start=$(cat "$RUN/$1.logstart" 2>/dev/null) || return 1
  tail -c +"$((start + 1))" "$LOGS/$1.log" | grep -q "(restart: always)"
}

http_ok() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)' "$1"; }
# The api-server's health answer names the scheduler, triggerer and dag-processor by their heartbeats.
healthy() {
  python3 - "http://127.0.0.1:$API_PORT/api/v2/monitor/health" "$1" <<'PY'
import json, sys, urllib.request
health = json.load(urllib.request.urlopen(sys.argv[1], timeout=3))
sys.exit(health[sys.argv[2]]["status"] != "healthy")
PY
}
# Celery logs "<name>@<host> ready." once per start; the log is appended to across restarts.
worker_ready() { [ "$(grep -cE "$1@[^ ]+ ready\." "$LOGS/$1.log")" -ge "$(cat "$RUN/$1.starts")" ]; }

# PostgreSQL refuses to run as root: as root it runs as the package's `postgres` user.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; else "$@"; fi
}
pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -n "$bin" ]; then echo "$bin/$1"; else command -v "$1"; fi
}

start_postgres() {
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    [ "$(id -u)" != 0 ] || chown postgres: "$PGDATA"
    chmod 700 "$PGDATA"
    as_postgres "$(pg_bin initdb)" -D "$PGDATA" -U airflow --auth=trust -E UTF8 >>"$LOGS/postgres.log" 2>&1
  fi
  if ! as_postgres "$(pg_bin pg_ctl)" -D "$PGDATA" status >/dev/null 2>&1; then
    as_postgres "$(pg_bin pg_ctl)" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 120 start \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PGDATA -c max_connections=200" >/dev/null
  fi
  head -1 "$PGDATA/postmaster.pid" >"$RUN/postgres.pid"
  as_postgres "$(pg_bin psql)" -h 127.0.0.1 -p "$PG_PORT" -U airflow -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'airflow'" | grep -q 1 \
    || as_postgres "$(pg_bin createdb)" -h 127.0.0.1 -p "$PG_PORT" -U airflow airflow
}

# Launch a part; await_part waits until it answers. Airflow's parts are launched together and then
# awaited, so that their start-ups (mostly imports) overlap.
launch_part() {
  case $1 in
    postgres) start_postgres ;;
    redis)
      mkdir -p "$ROOT/redis"
      launch redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$ROOT/redis" --save "" --appendonly no ;;
    local-vertex)
      # The token reaches the service through LOCAL_VERTEX_TOKEN, never on its command line.
      launch local-vertex python -m include.local_vertex serve --data-root "$PROJECT_ROOT" --data-dir "$LOCAL_VERTEX_DATA" \
        --port "$LOCAL_VERTEX_PORT" --storage-port "$LOCAL_VERTEX_STORAGE_PORT" \
        ${LOCAL_VERTEX_BASE_MODEL:+--base-model "$LOCAL_VERTEX_BASE_MODEL"} \
        ${LOCAL_VERTEX_MAX_CONCURRENT_JOBS:+--max-concurrent-jobs "$LOCAL_VERTEX_MAX_CONCURRENT_JOBS"} \
        ${LOCAL_VERTEX_TORCH_THREADS:+--torch-threads "$LOCAL_VERTEX_TORCH_THREADS"} ;;
    api-server) launch api-server bash -c "$RESTART_ALWAYS" api-server airflow api-server ;;
    scheduler) launch scheduler bash -c "$RESTART_ALWAYS" scheduler airflow scheduler ;;
    dag-processor) launch dag-processor bash -c "$RESTART_ALWAYS" dag-processor airflow dag-processor ;;
    triggerer) launch triggerer bash -c "$RESTART_ALWAYS" triggerer airflow triggerer --skip-serve-logs ;;
    worker-a|worker-b)
      # Workers share the log folder, as the compose file's workers share a volume: no log server.
      local cmd=(bash -c "$RESTART_ALWAYS" "$1" airflow celery worker --celery-hostname "$1@%h" --skip-serve-logs)
      running "$1" || echo $(( $(cat "$RUN/$1.starts" 2>/dev/null || echo 0) + 1 )) >"$RUN/$1.starts"
      if unshare --uts true 2>/dev/null; then
        launch "$1" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$1" "${cmd[@]}"
      else
        launch "$1" "${cmd[@]}"
      fi ;;
    *) echo "unknown part '$1'; the parts are: ${ALL[*]}" >&2; return 2 ;;
  esac
}

await_part() {
  case $1 in
    postgres) ;;  # pg_ctl start -w has waited
    redis) wait_for redis "an answer" redis-cli -p "$REDIS_PORT" ping ;;
    local-vertex) wait_for local-vertex "health answer" http_ok "http://127.0.0.1:$LOCAL_VERTEX_PORT/healthz" ;;
    api-server) wait_for api-server "REST API" http_ok "http://127.0.0.1:$API_PORT/api/v2/version" ;;
    scheduler|triggerer) wait_for "$1" "heartbeat" healthy "$1" ;;
    dag-processor) wait_for dag-processor "heartbeat" healthy dag_processor ;;
    worker-a|worker-b) wait_for "$1" "Celery ready line" worker_ready "$1" ;;
  esac
  echo "$1: running (pid $(pid_of "$1"), log $LOGS/$1.log)"
}

tokenizer_variable() {
  # The validator counts tokens with the tokenizer the service trains with.
  if [ -n "${LOCAL_VERTEX_BASE_MODEL:-}" ]; then
    AIRFLOW_VAR_GEMINI_TUNING_TOKENIZER=${AIRFLOW_VAR_GEMINI_TUNING_TOKENIZER:-$LOCAL_VERTEX_BASE_MODEL}
  else
    AIRFLOW_VAR_GEMINI_TUNING_TOKENIZER=${AIRFLOW_VAR_GEMINI_TUNING_TOKENIZER:-$(python -c "
from pathlib import Path
from include.tuning_engine.models import ensure_smollm2
print(ensure_smollm2(Path('$LOCAL_VERTEX_DATA') / 'models'))" 2>>"$LOGS/local-vertex.log")}
  fi
  export AIRFLOW_VAR_GEMINI_TUNING_TOKENIZER
}

migrate() {
  local version
  version=$(python -c "import importlib.metadata as m; print(m.version('apache-airflow'))")
  if [ "$(cat "$ROOT/.migrated" 2>/dev/null)" != "$version" ]; then
    echo "migrating Airflow's database on PostgreSQL (log: $LOGS/db-migrate.log)"
    airflow db migrate >"$LOGS/db-migrate.log" 2>&1 || { tail -20 "$LOGS/db-migrate.log" >&2; return 1; }
    # The pool that bounds live tuning jobs (left as it is when it exists; the scheduler checks it too).
    python -m gemini_tuning.pool >>"$LOGS/db-migrate.log" 2>&1 || { tail -20 "$LOGS/db-migrate.log" >&2; return 1; }
    echo "$version" >"$ROOT/.migrated"
  fi
}

start() {
  local parts=("$@") part airflow=()
  [ ${#parts[@]} -gt 0 ] || parts=("${ALL[@]}")
  for part in "${parts[@]}"; do
    case $part in
      postgres|redis|local-vertex) launch_part "$part"; await_part "$part" ;;
      *) airflow+=("$part") ;;
    esac
  done
  [ ${#airflow[@]} -gt 0 ] || return 0
  migrate
  tokenizer_variable
  for part in "${airflow[@]}"; do launch_part "$part"; done
  for part in "${airflow[@]}"; do await_part "$part"; done
}

# SIGTERM to each part's process group (all at once: their shutdowns overlap), then SIGKILL to what
# is left of a group after a grace period. PostgreSQL stops last, through pg_ctl.
stop() {
  local parts=("$@") part pid pids=() deadline i
  if [ ${#parts[@]} -eq 0 ]; then
    for ((i = ${#ALL[@]} - 1; i >= 0; i--)); do parts+=("${ALL[i]}"); done
  fi
  for part in "${parts[@]}"; do
    [ "$part" != postgres ] || continue
    if pid=$(pid_of "$part"); then
      kill -TERM -- "-$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  deadline=$((SECONDS + ${AIRFLOW_DISTRIBUTED_STOP_GRACE:-30}))
  for pid in "${pids[@]}"; do
    while kill -0 -- "-$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  for part in "${parts[@]}"; do
    if [ "$part" = postgres ] && [ -f "$PGDATA/PG_VERSION" ] && as_postgres "$(pg_bin pg_ctl)" -D "$PGDATA" status >/dev/null 2>&1; then
      as_postgres "$(pg_bin pg_ctl)" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
    fi
    rm -f "$RUN/$part.pid"
    echo "$part: stopped"
  done
}

status() {
  local down=0
  for part in "${ALL[@]}"; do
    if { [ "$part" = postgres ] && [ -f "$PGDATA/PG_VERSION" ] && as_postgres "$(pg_bin pg_ctl)" -D "$PGDATA" status >/dev/null 2>&1; } \
       || { [ "$part" != postgres ] && running "$part"; }; then
      echo "$part: running (pid $(pid_of "$part"))"
    else
      echo "$part: stopped"; down=1
    fi
  done
  echo "UI and REST API http://127.0.0.1:$API_PORT, PostgreSQL 127.0.0.1:$PG_PORT, Redis 127.0.0.1:$REDIS_PORT," \
       "local Vertex http://127.0.0.1:$LOCAL_VERTEX_PORT; data in $ROOT"
  return $down
}

# Trigger the tuning pipeline through the REST API, as the UI's form does, and wait for the run;
# prints each task's state and the worker that ran it.
trigger_and_wait() {
  python - "http://127.0.0.1:$API_PORT/api/v2" "$1" <<'PY'
import json, sys, time
from datetime import datetime

import httpx
api, conf, dag = sys.argv[1], json.loads(sys.argv[2]), "gemini_supervised_tuning"
with httpx.Client(base_url=api, timeout=30) as client:
    deadline = time.monotonic() + 300
    while client.get(f"/dags/{dag}").status_code != 200:
        if time.monotonic() > deadline:
            sys.exit(f"the dag-processor did not parse {dag} within 300 s")
        time.sleep(2)
    client.patch(f"/dags/{dag}", json={"is_paused": False}).raise_for_status()
    run = client.post(f"/dags/{dag}/dagRuns", json={"logical_date": None, "conf": conf})
    run.raise_for_status()
    run_id = run.json()["dag_run_id"]
    print(f"triggered {dag} run {run_id}")
    while (run := client.get(f"/dags/{dag}/dagRuns/{run_id}").json())["state"] not in ("success", "failed"):
        time.sleep(5)
    tis = client.get(f"/dags/{dag}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
for ti in sorted(tis, key=lambda ti: ti["start_date"] or ""):
    name = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
    print(f"  {name:26} {ti['state']:16} {ti['hostname'] or '-':10} try {ti['try_number']}")
took = datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])
print(f"run {run['state']} in {took.total_seconds() / 60:.1f} min (first task queued to last task done)")
sys.exit(run["state"] != "success")
PY
}

command=${1:-}
shift || true
case $command in
  start)
    [ -x .venv/bin/airflow ] || scripts/setup.sh
    shape_env
    # A part that does not come up stops the parts this command launched, and only those.
    set -E
    trap 'trap - ERR; echo "start failed: stopping ${LAUNCHED[*]:-nothing}" >&2; [ ${#LAUNCHED[@]} -eq 0 ] || stop "${LAUNCHED[@]}" >/dev/null; exit 1' ERR
    start "$@" ;;
  run)
    scripts/setup.sh
    shape_env
    started=$(date +%s)
    trap 'stop >/dev/null' EXIT
    start
    status=0
    trigger_and_wait "${1:-{\}}" || status=$?
    python scripts/summarize_run.py --since "$started" || status=$?
    exit "$status" ;;
  stop) shape_env; stop "$@" ;;
  status) shape_env; status ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; [ "$command" = help ] || exit 2 ;;
esac
