#!/usr/bin/env bash
# make bench: pqshim against direct libpq, PgBouncer and persistent
# connections, measured side by side in one run on a throwaway cluster,
# over a Unix socket and over loopback TCP with TLS. Every case is
# `pgbench -S -n -c 4 -j 4`; rounds are interleaved so that drift on a
# shared machine hits all cases alike. Prints medians, ratios with
# verdicts, and the same as Markdown tables.
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

# TLS over loopback TCP with a throwaway self-signed certificate, as a
# hosted database would have it: every fresh connection pays a handshake.
TLS_DIR="$CLUSTER_DIR/tls"
mkdir -p "$TLS_DIR"
TLS=""
if openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
        -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.crt" >/dev/null 2>&1; then
    chmod 600 "$TLS_DIR/server.key"
    [ -n "$CLUSTER_OWNER" ] && chown -R "$CLUSTER_OWNER" "$TLS_DIR"
    sql "alter system set ssl_cert_file = '$TLS_DIR/server.crt'" >/dev/null &&
        sql "alter system set ssl_key_file = '$TLS_DIR/server.key'" >/dev/null &&
        sql "alter system set ssl = on" >/dev/null && sql "select pg_reload_conf()" >/dev/null &&
        wait_until 10 env PGSSLMODE=require "$PSQL" -X -q -h 127.0.0.1 -c 'select 1' >/dev/null 2>&1 &&
        TLS=1
fi
[ -n "$TLS" ] || echo "TLS setup failed: TLS cases left out"

# PgBouncer: session and transaction mode on a Unix socket, and TLS for
# its clients on loopback TCP (its server side stays the Unix socket).
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
[ -n "$TLS" ] && cat >>"$BOUNCER_DIR/pgbouncer.ini" <<INI
client_tls_sslmode = allow
client_tls_cert_file = $TLS_DIR/server.crt
client_tls_key_file = $TLS_DIR/server.key
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
    local tcp=(-h 127.0.0.1 -p "$PGPORT") btcp=(-h 127.0.0.1 -p "$BOUNCER_PORT")
    local bunix=(-h "$BOUNCER_DIR" -p "$BOUNCER_PORT")
    local out
    case "$1" in
        persistent) out=$("$PGBENCH" "${args[@]}" 2>&1) ;;
        direct_C) out=$("$PGBENCH" -C "${args[@]}" 2>&1) ;;
        null_C) out=$(PQSHIM_LOG=none shimmed "$PGBENCH" -C "${args[@]}" 2>&1) ;;
        capped_discard_C) out=$(PQSHIM_POLICY=capped PQSHIM_RESET=discard PQSHIM_LOG=none shimmed "$PGBENCH" -C "${args[@]}" 2>&1) ;;
        capped_rollback_C) out=$(PQSHIM_POLICY=capped PQSHIM_RESET=rollback PQSHIM_LOG=none shimmed "$PGBENCH" -C "${args[@]}" 2>&1) ;;
        bouncer_session_C) out=$("$PGBENCH" "${bunix[@]}" -C "${args[@]}" bench_session 2>&1) ;;
        bouncer_tx_C) out=$("$PGBENCH" "${bunix[@]}" -C "${args[@]}" bench_tx 2>&1) ;;
        tls_direct_C) out=$(PGSSLMODE=require "$PGBENCH" "${tcp[@]}" -C "${args[@]}" 2>&1) ;;
        tls_null_C) out=$(PGSSLMODE=require PQSHIM_LOG=none shimmed "$PGBENCH" "${tcp[@]}" -C "${args[@]}" 2>&1) ;;
        tls_capped_C) out=$(PGSSLMODE=require PQSHIM_POLICY=capped PQSHIM_RESET=discard PQSHIM_LOG=none shimmed "$PGBENCH" "${tcp[@]}" -C "${args[@]}" 2>&1) ;;
        tls_bouncer_session_C) out=$(PGSSLMODE=require "$PGBENCH" "${btcp[@]}" -C "${args[@]}" bench_session 2>&1) ;;
    esac
    echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1
}

cases=(persistent direct_C null_C capped_discard_C capped_rollback_C)
[ -n "$BOUNCER_PID" ] && cases+=(bouncer_session_C bouncer_tx_C)
[ -n "$TLS" ] && cases+=(tls_direct_C tls_null_C tls_capped_C)
[ -n "$TLS" ] && [ -n "$BOUNCER_PID" ] && cases+=(tls_bouncer_session_C)
declare -A results
for round in $(seq 1 "$ROUNDS"); do
    for c in "${cases[@]}"; do
        tps=$(run_case "$c")
        results[$c]="${results[$c]:-} ${tps:-0}"
        printf 'round %d  %-22s %12s tps\n' "$round" "$c" "${tps:-failed}"
    done
done

median() { printf '%s\n' $1 | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
declare -A med label
for c in "${cases[@]}"; do med[$c]=$(median "${results[$c]}"); done
label=([persistent]="persistent connections, direct" [direct_C]="-C direct"
    [null_C]="-C pqshim null policy" [capped_discard_C]="-C pqshim capped, reset discard (default)"
    [capped_rollback_C]="-C pqshim capped, reset rollback"
    [bouncer_session_C]="-C PgBouncer session mode" [bouncer_tx_C]="-C PgBouncer transaction mode"
    [tls_direct_C]="TLS -C direct" [tls_null_C]="TLS -C pqshim null policy"
    [tls_capped_C]="TLS -C pqshim capped, reset discard"
    [tls_bouncer_session_C]="TLS -C PgBouncer session mode")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "n/a" && r + 0 >= t) ? "met" : "MISSED" }'; }
# Rows of the ratio table: "label|measured|target|verdict", also kept for
# the Markdown copy printed at the end.
ratio_rows=()
ratio_row() {  # LABEL A B [TARGET]
    local r; r=$(ratio "${med[$2]:-0}" "${med[$3]:-0}")
    local v=""; [ -n "${4:-}" ] && v=$(verdict "$r" "$4")
    ratio_rows+=("$1|$r|${4:+>= $4}|$v")
    printf '%-50s %8s %8s  %s\n' "$1" "$r" "${4:-}" "$v"
}

echo
echo "pgbench -S -n -c $CLIENTS -j $CLIENTS -T $SECONDS_PER_CASE, median of $ROUNDS interleaved rounds"
echo "(TLS: loopback TCP, sslmode=require, self-signed certificate; the rest: Unix socket)"
printf '%-42s %12s\n' "case" "tps"
for c in "${cases[@]}"; do printf '%-42s %12s\n' "${label[$c]}" "${med[$c]}"; done

echo
printf '%-50s %8s %8s  %s\n' "ratio" "measured" "target" ""
ratio_row "capped discard -C / persistent direct" capped_discard_C persistent 0.55
ratio_row "capped rollback -C / persistent direct" capped_rollback_C persistent 0.85
ratio_row "null -C / direct -C" null_C direct_C 0.97
ratio_row "capped discard -C / direct -C" capped_discard_C direct_C
if [ -n "$BOUNCER_PID" ]; then
    ratio_row "capped discard -C / PgBouncer session -C" capped_discard_C bouncer_session_C 6
    ratio_row "capped rollback -C / PgBouncer transaction -C" capped_rollback_C bouncer_tx_C 7
    # No pool can beat persistent connections: the ceiling of both.
    ratio_row "ceiling: persistent direct / PgBouncer session -C" persistent bouncer_session_C
    ratio_row "ceiling: persistent direct / PgBouncer transaction -C" persistent bouncer_tx_C
fi
if [ -n "$TLS" ]; then
    ratio_row "TLS: null -C / direct -C" tls_null_C tls_direct_C 0.97
    ratio_row "TLS: capped -C / direct -C" tls_capped_C tls_direct_C
    [ -n "$BOUNCER_PID" ] && ratio_row "TLS: capped -C / PgBouncer session -C" tls_capped_C tls_bouncer_session_C
fi

# Where a pooled -C transaction's time goes, for a missed capped target:
# the persistent transaction's time, and a reused checkout + query +
# checkin in one thread with each reset.
if printf '%s\n' "${ratio_rows[@]}" | grep -q '^capped.*|MISSED$'; then
    echo
    echo "why: time per transaction and per reused checkout (one client, Unix socket)"
    awk -v p="${med[persistent]}" -v d="${med[capped_discard_C]}" -v r="${med[capped_rollback_C]}" -v c=$CLIENTS \
        'BEGIN { printf "  per transaction, %d clients: persistent %.1f us, capped discard %.1f us, capped rollback %.1f us\n", c, c * 1e6 / p, c * 1e6 / d, c * 1e6 / r }'
    for reset in none rollback discard; do
        printf '  checkout + SELECT 1 + checkin, reset %-8s %s\n' "$reset" \
            "$(PQSHIM_POLICY=capped PQSHIM_RESET=$reset PQSHIM_LOG=none shimmed "$BUILD/bench_checkout" -q -n 5000)"
    done
    printf '  a persistent connection, SELECT 1 only:   %s\n' "$("$BUILD/bench_checkout" -q -P -n 5000)"
fi

echo
echo "one connect + finish pair (bench_checkout), Unix socket"
direct=$("$BUILD/bench_checkout" -n 50)
capped=$(PQSHIM_POLICY=capped PQSHIM_LOG=none shimmed "$BUILD/bench_checkout" -n 20000)
capped_none=$(PQSHIM_POLICY=capped PQSHIM_RESET=none PQSHIM_LOG=none shimmed "$BUILD/bench_checkout" -n 20000)
# The same through a host-wide limit (its file in the cluster's directory).
export PQSHIM_HOST_LIMIT_FILE="$CLUSTER_DIR/bench.hostlimit"
null_hl=$(PQSHIM_HOST_LIMIT=5 PQSHIM_LOG=none shimmed "$BUILD/bench_checkout" -n 50)
capped_hl=$(PQSHIM_POLICY=capped PQSHIM_HOST_LIMIT=5 PQSHIM_LOG=none shimmed \
    "$BUILD/bench_checkout" -n 20000)
unset PQSHIM_HOST_LIMIT_FILE
printf '%-34s %s\n' "direct" "$direct" "pqshim null, host limit 5" "$null_hl" \
    "pqshim capped (reused)" "$capped" "pqshim capped, reset none" "$capped_none" \
    "pqshim capped, host limit 5" "$capped_hl"
p99=$(echo "$capped" | sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p')
printf '%-50s %8s %8s  %s\n' "capped checkout+checkin p99 (µs)" "$p99" "<=100" \
    "$(awk -v v="$p99" 'BEGIN { print (v + 0 <= 100) ? "met" : "MISSED" }')"

# The shim's own instructions per reused checkout + checkin (reset none:
# the lightest reset), from the difference between two callgrind runs.
checkout_ir=""
if command -v valgrind >/dev/null 2>&1 && command -v callgrind_annotate >/dev/null 2>&1; then
    cg_dir=$(mktemp -d)
    shim_ir() {  # CALLGRIND-FILE: inclusive instructions in the shim's PQconnectdb + PQfinish
        callgrind_annotate --inclusive=yes "$1" 2>/dev/null |
            awk '/hooks.c:PQ(connectdb|finish) \[.*libpqshim.so\]$/ { gsub(",", "", $1); s += $1 } END { print s + 0 }'
    }
    for n in 200 1200; do
        PQSHIM_POLICY=capped PQSHIM_RESET=none PQSHIM_LOG=none LD_PRELOAD="$SHIM" valgrind --tool=callgrind \
            --callgrind-out-file="$cg_dir/cg.$n" "$BUILD/bench_checkout" -n $n >/dev/null 2>&1
    done
    checkout_ir=$(( ($(shim_ir "$cg_dir/cg.1200") - $(shim_ir "$cg_dir/cg.200")) / 1000 ))
    v=$(awk -v v="$checkout_ir" 'BEGIN { print (v > 0 && v <= 10000) ? "met" : "MISSED" }')
    printf '%-50s %8s %8s  %s\n' "instructions per reused checkout+checkin (callgrind)" "$checkout_ir" "<=10000" "$v"
    if [ "$v" = MISSED ]; then
        echo "why: the shim's functions by inclusive instructions, 1200 checkouts"
        callgrind_annotate --inclusive=yes "$cg_dir/cg.1200" 2>/dev/null | grep 'libpqshim.so\]$' | head -n 15
    fi
    rm -rf "$cg_dir"
fi

echo
echo "preload into a program that never calls libpq (/bin/true)"
ir_line=""
if command -v valgrind >/dev/null 2>&1; then
    ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
    plain=$(ir /bin/true)
    pre=$(LD_PRELOAD="$SHIM" ir /bin/true)
    ir_line="$plain -> $pre (+$((pre - plain)))"
    printf '%-46s %s\n' "instructions (callgrind)" "$ir_line"
fi
# Single runs, plain and preloaded in turn, so that a busy neighbour slows
# both alike; medians of each. $EPOCHREALTIME costs no process.
walls_plain=(); walls_pre=()
for _ in $(seq 300); do
    t0=${EPOCHREALTIME/./}; /bin/true
    t1=${EPOCHREALTIME/./}; LD_PRELOAD="$SHIM" /bin/true
    t2=${EPOCHREALTIME/./}
    walls_plain+=($((t1 - t0))); walls_pre+=($((t2 - t1)))
done
wp=$(median "${walls_plain[*]}"); wq=$(median "${walls_pre[*]}")
wall_r=$(ratio "$wq" "$wp")
wall_v=$(awk -v r="$wall_r" 'BEGIN { print (r != "n/a" && r + 0 <= 1.02) ? "met" : "MISSED" }')
printf '%-46s %s µs -> %s µs, median of 300 interleaved runs (%sx)  target <=1.02: %s\n' "wall time" "$wp" "$wq" "$wall_r" "$wall_v"

# The same figures as Markdown, to paste into the documentation.
echo
echo "---- Markdown ----"
echo
echo "One run, $(date -u +%Y-%m-%d), $(nproc)-core $(uname -m), $("$PG_BIN/postgres" --version | sed 's/.*) //'), $(pgbouncer --version 2>/dev/null | head -n 1), \`make bench\` (\`pgbench -S -n -c $CLIENTS -j $CLIENTS -T $SECONDS_PER_CASE\`, median of $ROUNDS interleaved rounds; TLS: loopback TCP, \`sslmode=require\`):"
echo
echo "| case | tps (median) |"
echo "|---|---:|"
for c in "${cases[@]}"; do
    printf '| %s | %s |\n' "${label[$c]}" "$(printf '%.0f' "${med[$c]}" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')"
done
echo
echo "| ratio | measured | target | |"
echo "|---|---:|---:|---|"
for row in "${ratio_rows[@]}"; do
    IFS='|' read -r l m t v <<<"$row"
    printf '| %s | %s | %s | %s |\n' "$l" "$m" "${t/>=/≥}" "$v"
done
[ -n "$checkout_ir" ] && printf '| instructions per reused checkout + checkin (callgrind, reset none) | %s | ≤ 10,000 | %s |\n' \
    "$checkout_ir" "$(awk -v v="$checkout_ir" 'BEGIN { print (v > 0 && v <= 10000) ? "met" : "MISSED" }')"
printf '| reused checkout + checkin p50 / p99 (µs, reset discard; reset none) | %s; %s | p99 ≤ 100 | |\n' \
    "$(echo "$capped" | sed -n 's/.*p50_us=\([0-9.]*\) p99_us=\([0-9.]*\).*/\1 \/ \2/p')" \
    "$(echo "$capped_none" | sed -n 's/.*p50_us=\([0-9.]*\) p99_us=\([0-9.]*\).*/\1 \/ \2/p')"
[ -n "$ir_line" ] && printf '| preload into `/bin/true`: instructions (callgrind) | %s | | |\n' "$ir_line"
printf '| preload into `/bin/true`: wall time (median of 300 interleaved runs) | %s → %s µs (%s ×) | ≤ 1.02 × | %s |\n' "$wp" "$wq" "$wall_r" "$wall_v"
