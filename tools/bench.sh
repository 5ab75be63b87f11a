#!/usr/bin/env bash
# make bench: pqshim against direct libpq, PgBouncer and persistent
# connections, measured side by side in one run on a throwaway cluster.
# Every case is `pgbench -S -n -c 4 -j 4`; rounds are interleaved so that
# drift on a shared machine hits all cases alike. Prints medians and ratios.
#   BENCH_SECONDS (default 5) per case, BENCH_ROUNDS (default 3)
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib/common.sh

SECONDS_PER_CASE=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CLIENTS=4
BOUNCER_PID=""

cleanup() {
    [ -n "$BOUNCER_PID" ] && kill "$BOUNCER_PID" 2>/dev/null
    cluster_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "pqshim bench — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -m), $("$PG_BIN/postgres" --version)"
cluster_start 100 || exit 1
sql "select 1" >/dev/null
"$PGBENCH" -i -q -s 1 >/dev/null 2>&1 || { echo "pgbench -i failed"; exit 1; }

# PgBouncer on a Unix socket in the cluster's directory, both pool modes.
BOUNCER_PORT=$((PGPORT + 1))
BOUNCER_DIR="$CLUSTER_DIR/bouncer"
mkdir -p "$BOUNCER_DIR"
cat >"$BOUNCER_DIR/pgbouncer.ini" <<INI
[databases]
bench_session = host=$CLUSTER_DIR port=$PGPORT dbname=postgres pool_mode=session
bench_tx = host=$CLUSTER_DIR port=$PGPORT dbname=postgres pool_mode=transaction
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir = $BOUNCER_DIR
auth_type = trust
auth_file = $BOUNCER_DIR/users.txt
pidfile = $BOUNCER_DIR/pgbouncer.pid
logfile = $BOUNCER_DIR/pgbouncer.log
max_client_conn = 200
default_pool_size = $CLIENTS
log_connections = 0
log_disconnections = 0
INI
echo '"postgres" ""' >"$BOUNCER_DIR/users.txt"
[ -n "$CLUSTER_OWNER" ] && chown -R "$CLUSTER_OWNER" "$BOUNCER_DIR"
if command -v pgbouncer >/dev/null 2>&1; then
    pg_as_owner pgbouncer "$BOUNCER_DIR/pgbouncer.ini" >/dev/null 2>&1 &
    BOUNCER_PID=$!
    wait_until 10 "$PSQL" -X -q -h "$BOUNCER_DIR" -p "$BOUNCER_PORT" -d bench_session -c 'select 1' >/dev/null 2>&1 \
        || { echo "pgbouncer did not start:"; cat "$BOUNCER_DIR/pgbouncer.log"; BOUNCER_PID=""; }
fi

# case NAME: run one pgbench and print its tps.
run_case() {
    local args=(-S -n -c $CLIENTS -j $CLIENTS -T "$SECONDS_PER_CASE")
    local out
    case "$1" in
        persistent) out=$("$PGBENCH" "${args[@]}" 2>&1) ;;
        direct_C) out=$("$PGBENCH" -C "${args[@]}" 2>&1) ;;
        null_C) out=$(PQSHIM_LOG=none shimmed "$PGBENCH" -C "${args[@]}" 2>&1) ;;
        capped_C) out=$(PQSHIM_POLICY=capped PQSHIM_LOG=none shimmed "$PGBENCH" -C "${args[@]}" 2>&1) ;;
        bouncer_session_C) out=$("$PGBENCH" -h "$BOUNCER_DIR" -p "$BOUNCER_PORT" -C "${args[@]}" bench_session 2>&1) ;;
        bouncer_tx_C) out=$("$PGBENCH" -h "$BOUNCER_DIR" -p "$BOUNCER_PORT" -C "${args[@]}" bench_tx 2>&1) ;;
    esac
    echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1
}

cases=(persistent direct_C null_C capped_C)
[ -n "$BOUNCER_PID" ] && cases+=(bouncer_session_C bouncer_tx_C)
declare -A results
for round in $(seq 1 "$ROUNDS"); do
    for c in "${cases[@]}"; do
        tps=$(run_case "$c")
        results[$c]="${results[$c]:-} ${tps:-0}"
        printf 'round %d  %-18s %12s tps\n' "$round" "$c" "${tps:-failed}"
    done
done

median() { printf '%s\n' $1 | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
declare -A med
for c in "${cases[@]}"; do med[$c]=$(median "${results[$c]}"); done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "n/a" && r + 0 >= t) ? "met" : "MISSED" }'; }

echo
echo "pgbench -S -n -c $CLIENTS -j $CLIENTS -T $SECONDS_PER_CASE, median of $ROUNDS interleaved rounds"
printf '%-34s %12s\n' "case" "tps"
printf '%-34s %12s\n' "persistent connections, direct" "${med[persistent]}"
printf '%-34s %12s\n' "-C direct" "${med[direct_C]}"
printf '%-34s %12s\n' "-C pqshim null policy" "${med[null_C]}"
printf '%-34s %12s\n' "-C pqshim capped policy" "${med[capped_C]}"
if [ -n "$BOUNCER_PID" ]; then
    printf '%-34s %12s\n' "-C PgBouncer session mode" "${med[bouncer_session_C]}"
    printf '%-34s %12s\n' "-C PgBouncer transaction mode" "${med[bouncer_tx_C]}"
fi

echo
printf '%-46s %8s %8s  %s\n' "ratio" "measured" "target" ""
r=$(ratio "${med[capped_C]}" "${med[persistent]}"); printf '%-46s %8s %8s  %s\n' "capped -C / persistent direct" "$r" "0.50" "$(verdict "$r" 0.5)"
r=$(ratio "${med[capped_C]}" "${med[direct_C]}"); printf '%-46s %8s %8s  %s\n' "capped -C / direct -C" "$r" "" ""
r=$(ratio "${med[null_C]}" "${med[direct_C]}"); printf '%-46s %8s %8s  %s\n' "null -C / direct -C" "$r" "0.97" "$(verdict "$r" 0.97)"
if [ -n "$BOUNCER_PID" ]; then
    r=$(ratio "${med[capped_C]}" "${med[bouncer_session_C]}"); printf '%-46s %8s %8s  %s\n' "capped -C / PgBouncer session -C" "$r" "8" "$(verdict "$r" 8)"
    r=$(ratio "${med[capped_C]}" "${med[bouncer_tx_C]}"); printf '%-46s %8s %8s  %s\n' "capped -C / PgBouncer transaction -C" "$r" "6" "$(verdict "$r" 6)"
fi

echo
echo "one connect + finish pair (bench_checkout), Unix socket"
direct=$("$BUILD/bench_checkout" -n 300)
capped=$(PQSHIM_POLICY=capped PQSHIM_LOG=none shimmed "$BUILD/bench_checkout" -n 20000)
# The same through a host-wide limit (its file in the cluster's directory).
export PQSHIM_HOST_LIMIT_FILE="$CLUSTER_DIR/bench.hostlimit"
null_hl=$(PQSHIM_HOST_LIMIT=5 PQSHIM_LOG=none shimmed "$BUILD/bench_checkout" -n 300)
capped_hl=$(PQSHIM_POLICY=capped PQSHIM_HOST_LIMIT=5 PQSHIM_LOG=none shimmed \
    "$BUILD/bench_checkout" -n 20000)
unset PQSHIM_HOST_LIMIT_FILE
printf '%-30s %s\n' "direct" "$direct" "pqshim null, host limit 5" "$null_hl" \
    "pqshim capped (reused)" "$capped" "pqshim capped, host limit 5" "$capped_hl"
p99=$(echo "$capped" | sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p')
printf '%-46s %8s %8s  %s\n' "capped checkout+checkin p99 (µs)" "$p99" "<=100" \
    "$(awk -v v="$p99" 'BEGIN { print (v + 0 <= 100) ? "met" : "MISSED" }')"

echo
echo "preload into a program that never calls libpq (/bin/true)"
if command -v valgrind >/dev/null 2>&1; then
    ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
    plain=$(ir /bin/true)
    pre=$(LD_PRELOAD="$SHIM" ir /bin/true)
    printf '%-46s %s -> %s (+%s)\n' "instructions (callgrind)" "$plain" "$pre" "$(ratio "$((pre - plain))" "$plain")x"
fi
loop_time() {  # N CMD...: wall seconds for N runs
    local n=$1; shift
    local t0; t0=$(date +%s%N)
    for _ in $(seq "$n"); do "$@"; done
    echo $(( ($(date +%s%N) - t0) / 1000000 ))
}
walls_plain=(); walls_pre=()
for _ in 1 2 3; do
    walls_plain+=("$(loop_time 500 /bin/true)")
    walls_pre+=("$(LD_PRELOAD="$SHIM" loop_time 500 /bin/true)")
done
wp=$(median "${walls_plain[*]}"); wq=$(median "${walls_pre[*]}")
r=$(ratio "$wq" "$wp")
printf '%-46s %s ms -> %s ms for 500 runs (%sx)  target <=1.02: %s\n' "wall time" "$wp" "$wq" "$r" \
    "$(awk -v r="$r" 'BEGIN { print (r + 0 <= 1.02) ? "met" : "MISSED" }')"
