#!/usr/bin/env bash
# pqshim demo: a multi-process connection storm against a small server,
# four ways.
#
# Starts a throwaway PostgreSQL that admits 9 client connections, then runs
# 6 pgbench processes of 4 clients each (24 clients) that open a new
# connection for every transaction:
#   1. directly                           - the server refuses connections
#   2. pqshim capped, a pool per process  - each process stays under its own
#      cap of 4, but 6 processes x 4 is still more than the server admits
#   3. pqshim null + host limit 8         - every transaction still opens a
#      new connection, but never more than 8 at once across the processes
#   4. pqshim capped + host limit 8       - pooled and held under 8 host-wide
# (runs 2-4 with --retry-full off, so refusals show instead of being
# retried) and prints a side-by-side summary. Everything it starts is
# stopped and removed when it ends, also on Ctrl-C. Run by `make demo`.
set -u
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=tests/lib/common.sh
. tests/lib/common.sh

PROCS=6
CLIENTS_PER_PROC=4
CLIENTS=$((PROCS * CLIENTS_PER_PROC))
SECONDS_PER_RUN=5
WORK_S=0.2            # time each transaction holds its connection
MAX_CONNECTIONS=13    # 3 reserved for superusers, 1 for the monitor: 9 left
RESERVED=3
POOL_SIZE=2
MAX_OVERFLOW=2
HOST_LIMIT=8
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

# run NAME [LAUNCHER OPTIONS...]: one storm of $PROCS pgbench processes at
# once; with options, each through the launcher. Leaves its numbers in
# R_<what>[NAME].
declare -A R_ABORTED R_REFUSED R_LOGGED R_PEAK R_OPENED R_TXNS R_TPS
run() {
    local name=$1; shift
    local log="$DIR/$name.shim.log" mon="$DIR/$name.monitor"
    local before i rc
    local -a pids=()
    before=$(wc -l <"$CLUSTER_LOG")
    start_monitor "$mon"
    for i in $(seq 1 "$PROCS"); do
        local -a cmd=(timeout --foreground 60 "$PGBENCH" -n -C -f "$DIR/txn.sql"
                      -c "$CLIENTS_PER_PROC" -j "$CLIENTS_PER_PROC" -T "$SECONDS_PER_RUN")
        [ $# -eq 0 ] || cmd=("$LAUNCHER" --log "$log" "$@" -- "${cmd[@]}")
        PGUSER=$ROLE PGDATABASE=$DB "${cmd[@]}" >"$DIR/$name.$i.out" 2>&1 &
        pids+=($!)
    done
    local setup_failed=0
    for i in $(seq 1 "$PROCS"); do
        rc=0
        wait "${pids[$((i - 1))]}" || rc=$?
        # pgbench exits 2 when clients were aborted, and 1 when even its
        # first connection was refused (all its clients count as aborted);
        # anything else is a failure.
        if [ "$rc" = 1 ] && grep -q "could not create connection for setup" "$DIR/$name.$i.out"; then
            setup_failed=$((setup_failed + CLIENTS_PER_PROC))
            continue
        fi
        case $rc in
            0|2) ;;
            124) say "failed: pgbench did not finish in time"; tail -n 20 "$DIR/$name.$i.out" >&2; exit 1 ;;
            13[0-9]|14[0-9]) say; echo "demo: interrupted, cleaning up" >&2; exit 130 ;;
            *) say "failed (pgbench exit status $rc):"; tail -n 20 "$DIR/$name.$i.out" >&2; exit 1 ;;
        esac
    done
    stop_monitor
    cat "$DIR/$name".[0-9]*.out >"$DIR/$name.out"
    tail -n +"$((before + 1))" "$CLUSTER_LOG" >"$DIR/$name.server.log"
    R_ABORTED[$name]=$(( $(grep -c "client [0-9]* aborted" "$DIR/$name.out") + setup_failed ))
    R_REFUSED[$name]=$(grep -c "FATAL: .*\(remaining connection slots are reserved\|too many clients\)" \
        "$DIR/$name.server.log")
    # A refused connection is authorized first, then turned away.
    R_OPENED[$name]=$(( $(grep -c "connection authorized: user=$ROLE " \
        "$DIR/$name.server.log") - R_REFUSED[$name] ))
    R_PEAK[$name]=$(awk '/^[0-9]+$/ && $1 > m { m = $1 } END { print m + 0 }' "$mon")
    R_TXNS[$name]=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' \
        "$DIR/$name.out" | awk '{ n += $1 } END { print n + 0 }')
    R_TPS[$name]=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$DIR/$name.out" |
        awk '{ n += $1 } END { printf "%.0f", n }')
    if [ $# -eq 0 ]; then
        R_LOGGED[$name]="-"
    else
        R_LOGGED[$name]=$(( $(count_events "$log" connect_failed) + $(count_events "$log" timeout) +
            $(count_events "$log" host_timeout) + $(count_events "$log" retry) ))
    fi
    say "${R_ABORTED[$name]} of $CLIENTS clients aborted"
}

para() { printf '%s\n' "$*" | fold -s -w 78 | sed 's/ *$//'; }

say
say "Workload: $PROCS pgbench processes of $CLIENTS_PER_PROC clients each ($CLIENTS clients), ${SECONDS_PER_RUN} s per"
say "run, each opening a new connection for every transaction (pgbench -C); a"
say "transaction is one indexed SELECT plus ${WORK_S} s of work on its connection. The"
say "server admits $LIMIT of these clients at a time: max_connections=$MAX_CONNECTIONS, $RESERVED reserved"
say "for superusers, 1 used by the monitor that samples pg_stat_activity every 100 ms."
say

step() { printf '%-56s ' "$1"; }
HL=(--host-limit "$HOST_LIMIT" --host-limit-file "$DIR/host.limit")
POOL=(--pool-size "$POOL_SIZE" --max-overflow "$MAX_OVERFLOW")
step "1/4 direct (no shim)"
run direct
step "2/4 pqshim capped, pool $POOL_SIZE + overflow $MAX_OVERFLOW per process"
run capped --policy capped "${POOL[@]}" --retry-full off
step "3/4 pqshim null, --host-limit $HOST_LIMIT"
run null_hl --policy null "${HL[@]}" --retry-full off
step "4/4 pqshim capped, pool $POOL_SIZE + overflow $MAX_OVERFLOW, --host-limit $HOST_LIMIT"
run capped_hl --policy capped "${POOL[@]}" "${HL[@]}" --retry-full off

# ---- summary ----------------------------------------------------------------

row() {  # LABEL DIRECT CAPPED NULL_HL CAPPED_HL
    printf '  %-38s %7s %10s %11s %12s\n' "$1" "$2" "$3" "$4" "$5"
}
line() { printf '  %s\n' "-------------------------------------------------------------------------------"; }
all() {  # LABEL ARRAY-NAME
    local -n a=$2
    row "$1" "${a[direct]:-0}" "${a[capped]:-0}" "${a[null_hl]:-0}" "${a[capped_hl]:-0}"
}

say
row "" "direct" "capped" "null +" "capped +"
row "" "" "per process" "host limit" "host limit"
line
row "processes x clients" "${PROCS}x$CLIENTS_PER_PROC" "${PROCS}x$CLIENTS_PER_PROC" "${PROCS}x$CLIENTS_PER_PROC" "${PROCS}x$CLIENTS_PER_PROC"
all "clients aborted by a connection error" R_ABORTED
all "connections refused by the server" R_REFUSED
all "failures in the pqshim logs" R_LOGGED
all "peak server connections (limit $LIMIT)" R_PEAK
all "server connections opened" R_OPENED
all "transactions" R_TXNS
all "throughput (tps, all processes)" R_TPS
line
say

for name in null_hl capped_hl; do
    if [ "${R_ABORTED[$name]}" -ne 0 ] || [ "${R_REFUSED[$name]}" -ne 0 ] ||
        [ "${R_LOGGED[$name]}" -ne 0 ] || [ "${R_PEAK[$name]}" -gt "$HOST_LIMIT" ]; then
        say "Unexpected: the $name run had errors or more than $HOST_LIMIT server connections."
        say "Its files are kept in $DIR."
        DIR=""
        exit 1
    fi
done

example=$(grep -h -m 1 " event=connect_failed " "$DIR/capped.shim.log")
if [ -n "$example" ]; then
    say "A refusal as pqshim logged it in run 2:"
    printf '%s\n' "$example" | fold -s -w 76 | sed 's/ *$//; s/^/  /'
    say
fi

direct=""
[ "${R_ABORTED[direct]}" -eq 0 ] ||
    direct="Directly, ${R_ABORTED[direct]} of $CLIENTS clients were turned away by the server. "
per=""
[ "${R_ABORTED[capped]}" -eq 0 ] ||
    per="A pool per process is not enough: $PROCS processes x $((POOL_SIZE + MAX_OVERFLOW)) connections is more than the server admits, and ${R_ABORTED[capped]} clients were still turned away. "
para "${direct}${per}With --host-limit $HOST_LIMIT, shared by every process through one file," \
    "all $CLIENTS clients were served with no connection errors and the server never saw" \
    "more than $HOST_LIMIT of them (peak ${R_PEAK[null_hl]} with a connection per transaction, ${R_PEAK[capped_hl]}" \
    "pooled: ${R_OPENED[capped_hl]} connections opened instead of ${R_OPENED[null_hl]})."
