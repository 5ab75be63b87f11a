#!/usr/bin/env bash
# make check-valgrind: representative workloads under valgrind memcheck with
# the shim preloaded — every entry point, both policies, threads, resets,
# unresettable connections, the control socket, fork. Fails on any memcheck
# error and on any leak whose stack passes through libpqshim.so.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib/common.sh

command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
WORK=$(mktemp -d /tmp/pqshim-valgrind.XXXXXX)
chmod 755 "$WORK"
trap 'cluster_stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
cluster_start 40 || exit 1

passed=0
failed=0
VG=(valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=none --num-callers=30)

# run NAME ENV... -- CMD...: one workload; stdin from $WORK/NAME.in if present.
run() {
    local name=$1; shift
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    local out="$WORK/$name.vg" input=/dev/null
    [ -f "$WORK/$name.in" ] && input="$WORK/$name.in"
    env "${envs[@]}" PQSHIM_LOG="$WORK/$name.log" LD_PRELOAD="$SHIM" \
        "${VG[@]}" --log-file="$out" "$@" <"$input" >"$WORK/$name.out" 2>&1
    local rc=$?
    # A workload may be meant to fail (pool timeouts): only valgrind's own
    # exit code (99) or a crash counts then.
    [ -n "${ALLOW_FAILURE:-}" ] && [ $rc -eq 1 ] && rc=0
    # Leaks of the host or libpq are not ours; any stack through the shim is.
    local ours
    ours=$(awk '/are (definitely|indirectly) lost/ {blk=1; buf=""} blk {buf=buf"\n"$0} /^==[0-9]+== $/ && blk {if (buf ~ /libpqshim/) print buf; blk=0}' "$out")
    if [ $rc -ne 0 ] || [ -n "$ours" ] || grep -q "Invalid \|uninitialised\|Mismatched" "$out"; then
        failed=$((failed + 1))
        echo "FAIL $name (exit $rc)"
        sed 's/^/    | /' "$out" | head -n 60
        [ -n "$ours" ] && echo "$ours" | head -n 40
        tail -n 5 "$WORK/$name.out" | sed 's/^/    | /'
    else
        passed=$((passed + 1))
        echo "ok   $name"
    fi
}

run psql_null -- "$PSQL" -X -c 'select 1'
run psql_capped PQSHIM_POLICY=capped -- "$PSQL" -X -c 'select 1' -c 'select 2'
run entry_points -- "$TESTBIN/connect_kinds"
run entry_points_capped PQSHIM_POLICY=capped -- "$TESTBIN/connect_kinds"
run pings -- "$TESTBIN/ping_kinds"
run foreign -- "$TESTBIN/foreign" "host=127.0.0.1 port=1 connect_timeout=5"
run threads_capped PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=2 PQSHIM_MAX_OVERFLOW=1 -- \
    "$TESTBIN/pool_threads" -t 6 -n 10 -q 'select 1'
run async_capped PQSHIM_POLICY=capped -- "$TESTBIN/pool_threads" -t 2 -n 5 -a -q 'select 1'
# An event loop above the cap: gates, the keeper thread, a timeout and
# connects finished while they wait.
run async_gates PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 \
    PQSHIM_POOL_TIMEOUT=3 -- "$TESTBIN/async_loop" 4 300 20 finish-waiting 2500
cat >"$WORK/script_capped.in" <<'SCRIPT'
connect 0
pipefail 0
reset 0
finish 0
connect 0
exec 0 BEGIN
exec 0 CREATE TEMP TABLE t (x int)
nonblock 0
notice 0
finish 0
connect 1
check 1
send 1 select pg_sleep(0)
finish 1
connect 2
event 2
finish 2
connect 3
pipeline 3
finish 3
tconnect 4
exec 4 select 1
finish 4
fork
SCRIPT
run script_capped PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=1 -- "$TESTBIN/pool_script"
run fresh_session_capped PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 -- \
    "$TESTBIN/fresh_session" 3
run fresh_session_rollback PQSHIM_POLICY=capped PQSHIM_RESET=rollback PQSHIM_POOL_SIZE=1 -- \
    "$TESTBIN/fresh_session" 3
ALLOW_FAILURE=1 run timeout_capped PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=0.2 -- \
    "$TESTBIN/pool_threads" -t 3 -n 3 -q 'select pg_sleep(0.3)'
run host_limit_capped PQSHIM_POLICY=capped PQSHIM_HOST_LIMIT=2 "PQSHIM_HOST_LIMIT_FILE=$WORK/host.limit" \
    "PQSHIM_CONTROL=$WORK/hl-%p.sock" -- "$TESTBIN/pool_threads" -t 4 -n 10 -q 'select 1'
ALLOW_FAILURE=1 run host_limit_timeout PQSHIM_HOST_LIMIT=1 "PQSHIM_HOST_LIMIT_FILE=$WORK/host.limit" \
    PQSHIM_POOL_TIMEOUT=0.2 -- "$TESTBIN/pool_threads" -t 3 -n 2 -q 'select pg_sleep(0.3)'
run control_socket PQSHIM_POLICY=capped "PQSHIM_CONTROL=$WORK/ctl-%p.sock" -- /usr/bin/python3 -c "
import glob, os, socket, psycopg2
c = psycopg2.connect(''); c.cursor().execute('select 1')
d = psycopg2.connect(''); d.close()
for cmd in ('status', 'metrics', 'health', 'pause', 'resume', 'dispose', 'bogus', 'help'):
    s = socket.socket(socket.AF_UNIX); s.connect('$WORK/ctl-%d.sock' % os.getpid())
    s.sendall((cmd + '\n').encode()); data = b''
    while True:
        b = s.recv(65536)
        if not b: break
        data += b
    assert data, cmd
c.close()
"

echo
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
