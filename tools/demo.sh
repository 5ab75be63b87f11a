#!/usr/bin/env bash
# pqshim demo: a connection storm against a small server, three ways.
#
# Starts a throwaway PostgreSQL that admits 9 client connections, then runs
# 24 pgbench clients that open a new connection for every transaction:
#   1. directly                      - the server refuses connections
#   2. through pqshim, policy null   - same refusals, now counted and logged
#      (with --retry-full off: by default pqshim would retry them)
#   3. through pqshim, policy capped - pooled, at most 8 server connections
# and prints a side-by-side summary. Everything it starts is stopped and
# removed when it ends, also on Ctrl-C. Run by `make demo`.
set -u
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=tests/lib/common.sh
. tests/lib/common.sh

CLIENTS=24
SECONDS_PER_RUN=5
WORK_S=0.2            # time each transaction holds its connection
MAX_CONNECTIONS=13    # 3 reserved for superusers, 1 for the monitor: 9 left
RESERVED=3
POOL_SIZE=4
MAX_OVERFLOW=4
ROLE=demo
DB=bench

for f in "$SHIM" "$LAUNCHER"; do
    [ -x "$f" ] || [ -f "$f" ] || { echo "demo: $f is missing; run 'make' first" >&2; exit 1; }
done
[ -x "$PGBENCH" ] || { echo "demo: pgbench not found; run 'make deps' first" >&2; exit 1; }

DIR=""
MONITOR_PID=""

cleanup() {
    trap - EXIT INT TERM
    if [ -n "$MONITOR_PID" ]; then
        kill "$MONITOR_PID" 2>/dev/null
        wait "$MONITOR_PID" 2>/dev/null
    fi
    cluster_stop
    [ -z "$DIR" ] || rm -rf "$DIR"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, cleaning up" >&2; exit 130' INT
trap 'exit 143' TERM

DIR=$(mktemp -d /tmp/pqshim-demo.XXXXXX)
chmod 755 "$DIR"

say() { printf '%s\n' "$*"; }

# ---- the server ----------------------------------------------------------

printf 'Starting a throwaway PostgreSQL (max_connections=%s) ... ' "$MAX_CONNECTIONS"
cluster_start "$MAX_CONNECTIONS" >"$DIR/start.log" 2>&1 || {
    say "failed"; cat "$DIR/start.log" >&2; exit 1; }
if ! { sql "create role $ROLE login" && sql "create database $DB owner $ROLE" &&
        PGUSER=$ROLE PGDATABASE=$DB "$PGBENCH" -i -q -s 1; } >"$DIR/init.log" 2>&1; then
    say "failed"; cat "$DIR/init.log" >&2; exit 1
fi
SERVER_VERSION=$(sql "show server_version" | cut -d' ' -f1)
say "done (PostgreSQL $SERVER_VERSION)"

# Every transaction: one indexed read, then some work while the connection
# is held, as an application request would.
cat >"$DIR/txn.sql" <<EOF
\set aid random(1, 100000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SELECT pg_sleep($WORK_S);
EOF

# The monitor: one superuser session sampling the client backends every
# 100 ms (superusers may use the reserved slots, so it is never refused).
MONITOR_SQL="select count(*) from pg_stat_activity
 where backend_type = 'client backend' and pid <> pg_backend_pid()"

start_monitor() {  # OUTFILE
    printf '%s \\watch 0.1\n' "$MONITOR_SQL" |
        "$PSQL" -X -q -A -t -U postgres -d postgres >"$1" 2>/dev/null &
    MONITOR_PID=$!
    wait_until 5 test -s "$1" || { echo "demo: the monitor did not start" >&2; exit 1; }
}

stop_monitor() {
    kill "$MONITOR_PID" 2>/dev/null
    wait "$MONITOR_PID" 2>/dev/null
    MONITOR_PID=""
}

LIMIT=$((MAX_CONNECTIONS - RESERVED - 1))

# run NAME [LAUNCHER OPTIONS...]: one storm; with options, through the
# launcher. Leaves its numbers in R_<what>[NAME].
declare -A R_ABORTED R_REFUSED R_LOGGED R_PEAK R_OPENED R_TXNS R_TPS
run() {
    local name=$1; shift
    local out="$DIR/$name.out" log="$DIR/$name.shim.log" mon="$DIR/$name.monitor"
    local before rc=0
    local -a cmd=(timeout --foreground 60 "$PGBENCH" -n -C -f "$DIR/txn.sql"
                  -c "$CLIENTS" -j "$CLIENTS" -T "$SECONDS_PER_RUN")
    [ $# -eq 0 ] || cmd=("$LAUNCHER" --log "$log" "$@" -- "${cmd[@]}")
    before=$(wc -l <"$CLUSTER_LOG")
    start_monitor "$mon"
    PGUSER=$ROLE PGDATABASE=$DB "${cmd[@]}" >"$out" 2>&1 || rc=$?
    stop_monitor
    # pgbench exits 2 when clients were aborted; anything else is a failure.
    case $rc in
        0|2) ;;
        124) say "failed: pgbench did not finish in time"; tail -n 20 "$out" >&2; exit 1 ;;
        13[0-9]|14[0-9]) say; echo "demo: interrupted, cleaning up" >&2; exit 130 ;;
        *) say "failed (pgbench exit status $rc):"; tail -n 20 "$out" >&2; exit 1 ;;
    esac
    tail -n +"$((before + 1))" "$CLUSTER_LOG" >"$DIR/$name.server.log"
    R_ABORTED[$name]=$(grep -c "client [0-9]* aborted" "$out")
    R_REFUSED[$name]=$(grep -c "FATAL: .*\(remaining connection slots are reserved\|too many clients\)" \
        "$DIR/$name.server.log")
    # A refused connection is authorized first, then turned away.
    R_OPENED[$name]=$(( $(grep -c "connection authorized: user=$ROLE " \
        "$DIR/$name.server.log") - R_REFUSED[$name] ))
    R_PEAK[$name]=$(awk '/^[0-9]+$/ && $1 > m { m = $1 } END { print m + 0 }' "$mon")
    R_TXNS[$name]=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    R_TPS[$name]=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n 1)
    R_TPS[$name]=$(printf '%.0f' "${R_TPS[$name]:-0}")
    if [ $# -eq 0 ]; then
        R_LOGGED[$name]="-"
    else
        R_LOGGED[$name]=$(( $(count_events "$log" connect_failed) +
            $(count_events "$log" timeout) + $(count_events "$log" retry) ))
    fi
    say "${R_ABORTED[$name]} of $CLIENTS clients aborted"
}

para() { printf '%s\n' "$*" | fold -s -w 78 | sed 's/ *$//'; }

say
say "Workload: $CLIENTS pgbench clients, ${SECONDS_PER_RUN} s per run, each opening a new connection"
say "for every transaction (pgbench -C); a transaction is one indexed SELECT plus"
say "${WORK_S} s of work on its connection. The server admits $LIMIT of these clients at"
say "a time: max_connections=$MAX_CONNECTIONS, $RESERVED reserved for superusers, 1 used by the"
say "monitor that samples pg_stat_activity every 100 ms."
say

step() { printf '%-50s ' "$1"; }
step "1/3 direct (no shim)"
run direct
step "2/3 pqshim --policy null --retry-full off"
run null --policy null --retry-full off
step "3/3 pqshim --policy capped, pool $POOL_SIZE + overflow $MAX_OVERFLOW"
run capped --policy capped --pool-size "$POOL_SIZE" --max-overflow "$MAX_OVERFLOW"

# ---- summary ----------------------------------------------------------------

row() {  # LABEL DIRECT NULL CAPPED
    printf '  %-38s %8s %11s %13s\n' "$1" "$2" "$3" "$4"
}
line() { printf '  %s\n' "------------------------------------------------------------------------"; }

say
row "" "direct" "shim null" "shim capped"
line
row "clients" "$CLIENTS" "$CLIENTS" "$CLIENTS"
row "clients aborted by a connection error" "${R_ABORTED[direct]}" "${R_ABORTED[null]}" "${R_ABORTED[capped]}"
row "connections refused by the server" "${R_REFUSED[direct]}" "${R_REFUSED[null]}" "${R_REFUSED[capped]}"
row "failures in the pqshim log" "${R_LOGGED[direct]}" "${R_LOGGED[null]}" "${R_LOGGED[capped]}"
row "peak server connections (limit $LIMIT)" "${R_PEAK[direct]}" "${R_PEAK[null]}" "${R_PEAK[capped]}"
row "server connections opened" "${R_OPENED[direct]}" "${R_OPENED[null]}" "${R_OPENED[capped]}"
row "transactions" "${R_TXNS[direct]:-0}" "${R_TXNS[null]:-0}" "${R_TXNS[capped]:-0}"
row "throughput (tps)" "${R_TPS[direct]}" "${R_TPS[null]}" "${R_TPS[capped]}"
line
say

cap=$((POOL_SIZE + MAX_OVERFLOW))
if [ "${R_ABORTED[capped]}" -ne 0 ] || [ "${R_REFUSED[capped]}" -ne 0 ] ||
    [ "${R_LOGGED[capped]}" -ne 0 ] || [ "${R_PEAK[capped]}" -gt "$cap" ]; then
    say "Unexpected: the capped run had errors or more than $cap server connections."
    say "Its files are kept in $DIR."
    DIR=""
    exit 1
fi

example=$(grep -m 1 " event=connect_failed " "$DIR/null.shim.log")
if [ -n "$example" ]; then
    say "A refusal as the null policy logged it:"
    printf '%s\n' "$example" | fold -s -w 76 | sed 's/ *$//; s/^/  /'
    say
fi

speed=$(awk -v c="${R_TPS[capped]}" -v d="${R_TPS[direct]}" \
    'BEGIN { if (d > 0 && c >= 1.1 * d) printf " at %.1fx the throughput", c / d }')
direct=""
[ "${R_ABORTED[direct]}" -eq 0 ] ||
    direct="Directly, ${R_ABORTED[direct]} of $CLIENTS clients were turned away by the server; "
para "${direct}through pqshim's capped policy all $CLIENTS clients were served with no" \
    "connection errors$speed, sharing at most $cap server connections" \
    "(${R_OPENED[capped]} opened, instead of ${R_OPENED[direct]})." | sed '1s/^t/T/'
