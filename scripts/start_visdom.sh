#!/usr/bin/env bash
# Start the visdom server for live training plots, in the background, bound to loopback.
#
# usage: scripts/start_visdom.sh [PORT]        (default 8097, the default --display_port)
#
# Run state lives in .visdom/ at the repo root: visdom-PORT.pid, visdom-PORT.log and the saved
# envs (envs/). Waits until the server answers, then prints its URL and PID. Running it again
# while the server is up only says so. Stop it with scripts/stop_visdom.sh [PORT].
# Offline machines need visdom's JS/CSS first: scripts/setup_visdom_offline.py (`make visdom`
# runs both). From another machine, reach it through an SSH tunnel: ssh -L PORT:localhost:PORT.
# Environment: PYTHON (default .venv/bin/python), VISDOM_RUN_DIR (default .visdom).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${1:-8097}
PY=${PYTHON:-$ROOT/.venv/bin/python}
RUN_DIR=${VISDOM_RUN_DIR:-$ROOT/.visdom}
PID_FILE=$RUN_DIR/visdom-$PORT.pid
LOG=$RUN_DIR/visdom-$PORT.log
URL=http://localhost:$PORT
WAIT_S=60

case $PORT in '' | *[!0-9]*) echo "error: PORT must be a number, got '$PORT'" >&2; exit 2 ;; esac
if [ ! -x "$PY" ]; then
    echo "error: $PY not found: create the virtualenv first (make venv) or set PYTHON" >&2
    exit 1
fi

# Does something answer HTTP on the port? Prints "visdom", "other" or nothing.
probe() {
    "$PY" - "$PORT" <<'PYEOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2) as r:
        print("visdom" if b"visdom" in r.read(65536).lower() else "other")
except Exception:
    pass
PYEOF
}

is_our_server() {  # PID alive and it is a visdom server (not a recycled PID)
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q visdom.server
}

mkdir -p "$RUN_DIR/envs"
if [ -f "$PID_FILE" ]; then
    OLD_PID=$(cat "$PID_FILE")
    if is_our_server "$OLD_PID"; then
        echo "visdom is already running at $URL (PID $OLD_PID, log $LOG)"
        exit 0
    fi
    rm -f "$PID_FILE"  # stale: the server died or the machine restarted
fi
case $(probe) in
    visdom) echo "a visdom server not started by this script already answers at $URL; using it"; exit 0 ;;
    other) echo "error: port $PORT is taken by another program; pick another: scripts/start_visdom.sh PORT" >&2; exit 1 ;;
esac

# setsid: its own session, so closing this terminal (SIGHUP) or Ctrl-C in it does not stop it
setsid nohup "$PY" -m visdom.server -port "$PORT" -bind_local -env_path "$RUN_DIR/envs/" \
    -logging_level WARNING >"$LOG" 2>&1 </dev/null &
PID=$!
echo "$PID" >"$PID_FILE"

for _ in $(seq $((WAIT_S * 4))); do
    if ! kill -0 "$PID" 2>/dev/null; then
        rm -f "$PID_FILE"
        echo "error: visdom server exited during start-up; last lines of $LOG:" >&2
        tail -n 15 "$LOG" >&2
        if grep -q "downloading\|Errno\|URLError\|ConnectionError" "$LOG"; then
            echo "hint: offline? run: $PY scripts/setup_visdom_offline.py" >&2
        fi
        exit 1
    fi
    if [ "$(probe)" = visdom ]; then
        echo "visdom server running at $URL (PID $PID, log $LOG, pid file $PID_FILE)"
        if [ "$PORT" = 8097 ]; then MAKE_STOP="make visdom-stop"; else MAKE_STOP="make visdom-stop VISDOM_PORT=$PORT"; fi
        echo "stop it with: scripts/stop_visdom.sh $PORT   (or $MAKE_STOP)"
        exit 0
    fi
    sleep 0.25
done
echo "error: visdom server (PID $PID) did not answer within ${WAIT_S} s; see $LOG" >&2
exit 1
