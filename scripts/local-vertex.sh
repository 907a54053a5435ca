# Sourced by the scripts that need the local Vertex service running beside Airflow.
# start_local_vertex: start it in the background (stopped when the calling script exits), wait
# until it answers, and point the validator at the local model's tokenizer.

start_local_vertex() {
  mkdir -p "$LOCAL_VERTEX_DATA"
  local log="$LOCAL_VERTEX_DATA/service.log"
  local roots root root_args=()
  IFS=: read -ra roots <<<"$LOCAL_VERTEX_DATA_ROOTS"
  for root in "${roots[@]}"; do root_args+=(--data-root "$root"); done
  python -m include.local_vertex serve "${root_args[@]}" \
    ${LOCAL_VERTEX_TORCH_THREADS:+--torch-threads "$LOCAL_VERTEX_TORCH_THREADS"} >"$log" 2>&1 &
  LOCAL_VERTEX_PID=$!
  trap 'kill -TERM "$LOCAL_VERTEX_PID" 2>/dev/null && wait "$LOCAL_VERTEX_PID" 2>/dev/null; true' EXIT
  python - "$LOCAL_VERTEX_PID" <<'PY' || { tail -20 "$log"; return 1; }
import os, sys, time, urllib.request
pid, url = int(sys.argv[1]), f"http://127.0.0.1:{os.environ['LOCAL_VERTEX_PORT']}/health"
for _ in range(120):
    try:
        urllib.request.urlopen(url, timeout=2)
        sys.exit(0)
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit("the local Vertex service exited: see its log")
        time.sleep(0.5)
sys.exit("the local Vertex service did not answer within a minute")
PY
  echo "local Vertex service on http://127.0.0.1:$LOCAL_VERTEX_PORT, storage emulator on $STORAGE_EMULATOR_HOST (log: $log)"
  # The bundled model is converted once into the service's model folder; its tokenizer lets the
  # validator count tokens exactly as the trainer will.
  AIRFLOW_VAR_GEMINI_TUNING_TOKENIZER=$(python -c "
from pathlib import Path
from include.tuning_engine.models import ensure_smollm2
print(ensure_smollm2(Path('$LOCAL_VERTEX_DATA') / 'models'))" 2>>"$log")
  export AIRFLOW_VAR_GEMINI_TUNING_TOKENIZER
}
