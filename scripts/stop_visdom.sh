#!/usr/bin/env bash
# Stop the visdom server started by scripts/start_visdom.sh, by its PID file.
#
# usage: scripts/stop_visdom.sh [PORT]         (default 8097)
#
# Sends SIGTERM, waits up to 10 s for it to exit, then SIGKILL; removes the PID file.
# Environment: VISDOM_RUN_DIR (default .visdom).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${1:-8097}
RUN_DIR=${VISDOM_RUN_DIR:-$ROOT/.visdom}
PID_FILE=$RUN_DIR/visdom-$PORT.pid

if [ ! -f "$PID_FILE" ]; then
    echo "no visdom server started by start_visdom.sh on port $PORT (no $PID_FILE)"
    exit 0
fi
PID=$(cat "$PID_FILE")
# Only signal the PID if it is still our visdom server: a stale file may name a recycled PID.
if ! kill -0 "$PID" 2>/dev/null || ! tr '\0' ' ' <"/proc/$PID/cmdline" 2>/dev/null | grep -q visdom.server; then
    echo "visdom server (PID $PID) was not running; removed stale $PID_FILE"
    rm -f "$PID_FILE"
    exit 0
fi
kill -TERM "$PID"
for _ in $(seq 40); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.25
done
if kill -0 "$PID" 2>/dev/null; then
    echo "visdom server (PID $PID) ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$PID"
fi
rm -f "$PID_FILE"
echo "stopped visdom server on port $PORT (PID $PID)"
