#!/usr/bin/env bash
# The FastAPI case side by side: a FastAPI app under uvicorn whose
# endpoints open a connection per request (tests/helpers/fastapi_app.py:
# /sync with psycopg2 in FastAPI's thread pool, /async with psycopg 3's
# AsyncConnection on the event loop), against a throwaway server that
# admits 9 clients; 200 requests per endpoint, 20 at a time, while /ping is
# probed every 50 ms. Three ways: no shim, pqshim null (retry on), pqshim
# capped --pool-size 2 --max-overflow 1. Prints one table: requests that
# failed, the peak of server connections, the slowest /ping.
# Needs python3-fastapi, python3-uvicorn, python3-httpx (Debian).
set -u
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=tests/lib/common.sh
. tests/lib/common.sh

REQUESTS=${REQUESTS:-200}
CONCURRENCY=${CONCURRENCY:-20}
"$PYTHON" -c 'import fastapi, uvicorn, httpx' 2>/dev/null || {
    echo "fastapi_table: needs python3-fastapi python3-uvicorn python3-httpx" >&2; exit 1; }
[ -f "$SHIM" ] && [ -x "$LAUNCHER" ] || { echo "fastapi_table: run 'make' first" >&2; exit 1; }

DIR=$(mktemp -d /tmp/pqshim-fastapi.XXXXXX)
chmod 755 "$DIR"
APP_PID="" SAMPLER_PID=""
cleanup() {
    [ -z "$APP_PID" ] || stop "$APP_PID"
    [ -z "$SAMPLER_PID" ] || stop "$SAMPLER_PID"
    cluster_stop
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 12 slots: 3 reserved for superusers (the sampler uses one of them), 9
# for the app's role.
cluster_start 12 >/dev/null || exit 1
sql "create role app login" >/dev/null
export PSYCOPG_IMPL=python

peak_start() {
    "$PYTHON" - "$DIR/peak" <<'EOF' &
import sys, time, psycopg2
c = psycopg2.connect(""); c.autocommit = True; cur = c.cursor(); peak = 0
while True:
    cur.execute("select count(*) from pg_stat_activity where usename = 'app'")
    peak = max(peak, cur.fetchone()[0])
    open(sys.argv[1], "w").write(str(peak))
    time.sleep(0.02)
EOF
    SAMPLER_PID=$!
}

stop() {  # PID: TERM, and KILL if it is still there after 10 s
    kill "$1" 2>/dev/null
    wait_until 10 eval "! kill -0 $1 2>/dev/null" || kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

run() {  # LABEL LAUNCHER-ARGS...
    local label=$1 ep
    shift
    for ep in sync async; do
        rm -f "$DIR/app.sock" "$DIR/peak"
        PGUSER=app "$@" "$PYTHON" -m uvicorn --app-dir tests/helpers fastapi_app:app \
            --uds "$DIR/app.sock" --log-level critical >"$DIR/uvicorn.log" 2>&1 &
        APP_PID=$!
        wait_until 30 test -S "$DIR/app.sock" || { cat "$DIR/uvicorn.log"; exit 1; }
        peak_start
        "$PYTHON" tests/helpers/http_load.py "$DIR/app.sock" "/$ep" "$REQUESTS" "$CONCURRENCY" \
            >"$DIR/$ep.json"
        stop "$SAMPLER_PID"
        stop "$APP_PID"
        SAMPLER_PID="" APP_PID=""
        "$PYTHON" - "$DIR/$ep.json" "$(cat "$DIR/peak" 2>/dev/null || echo 0)" "$label" "$ep" "$REQUESTS" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
failed = int(sys.argv[5]) - r["ok"]
print("| %-52s | %-5s | %3d of %s failed | %2s | %7.0f ms |" % (
    sys.argv[3], sys.argv[4], failed, sys.argv[5], sys.argv[2], r["max_ping_ms"] or 0))
EOF
    done
}

echo "$REQUESTS requests per endpoint, $CONCURRENCY at a time, server admitting 9 clients"
echo
echo "| run                                                  | endpoint | failed | peak server conns | slowest /ping |"
echo "|---|---|---|---|---|"
run "no shim" env
run "pqshim (null, retry on)" "$LAUNCHER" --
run "pqshim --policy capped --pool-size 2 --max-overflow 1" "$LAUNCHER" --policy capped \
    --pool-size 2 --max-overflow 1 --
