# shellcheck shell=bash
# pqshim (capped policy) in front of PgBouncer in transaction mode, in front
# of the server: each program's connects become checkouts of its own small
# pool, whose connections are PgBouncer client connections; PgBouncer shares
# a few server connections among all of them. Each test starts its own
# PgBouncer (tests/lib/pgbouncer.bash) and passes, saying so, when PgBouncer
# is not installed.

. "$ROOT/tests/lib/capped.bash"
. "$ROOT/tests/lib/pgbouncer.bash"

export PQSHIM_POLICY=capped

# What a session may leave behind, and the check a fresh session passes
# (a custom setting, timezone, a temporary table, a prepared statement,
# SET ROLE).
BOUNCER_DIRTY=(
    "set pqshim.leak = 'dirty'"
    "set timezone = 'Pacific/Chatham'"
    "create temp table leak_tt (x int)"
    "prepare leak_p as select 1"
    "set role pg_read_all_data"
)
BOUNCER_CHECK="select coalesce(current_setting('pqshim.leak', true), '') || '|' || current_setting('timezone') || '|' || (to_regclass('pg_temp.leak_tt') is null)::text || '|' || (select count(*) from pg_prepared_statements) || '|' || current_user"
BOUNCER_LEFT="dirty|Pacific/Chatham|false|1|pg_read_all_data"

server_timezone() {  # the server's default timezone (initdb's choice)
    sql "show timezone"
}

# shim_log_clean LOG: no error line, no warn line, no close that a reset
# failure or a broken connection caused.
shim_log_clean() {
    assert_eq 0 "$(grep -cE ': (error|warn) ' "$1" || true)" \
        "error and warn lines in $1: $(grep -E ': (error|warn) ' "$1" | head -n 3)"
    assert_eq 0 "$(grep -cE ' event=close .*reason=(reset_failed|broken|dead|unsafe_state) ' "$1" || true)" \
        "closes after a failed reset or a broken connection in $1"
}

# assert_shim_reused LOG CAP: connects were mostly served by reused
# connections to PgBouncer (a connection is opened again only after an
# overflow close: more than PQSHIM_POOL_SIZE idle at a checkin), and the
# connections open at once, counted along the log (a close line comes
# before the slot it frees is taken again), never exceeded the cap.
assert_shim_reused() {
    local checkouts connects reused peak
    checkouts=$(count_events "$1" checkout)
    connects=$(count_events "$1" connect)
    reused=$(grep -c ' event=checkout .*reused=1 ' "$1" || true)
    peak=$(awk '/ event=connect / {n++; if (n > p) p = n} / event=close / {n--} END {print p + 0}' "$1")
    assert_eq "$checkouts" "$((reused + connects))" "checkouts: reused ones + new connections"
    assert_ge 1 "$connects" "connections to PgBouncer"
    [ $((connects * 4)) -le "$checkouts" ] ||
        fail "little reuse: $connects connections to PgBouncer for $checkouts checkouts"
    assert_le "$2" "$peak" "connections to PgBouncer open at once (the cap)"
}

# bouncer_kept_its_servers MAX: PgBouncer never closed a server connection
# because its client left in the middle of a query, and opened at most MAX.
bouncer_kept_its_servers() {
    assert_eq 0 "$(bouncer_log_count 'closing because: client disconnect while server was not ready')" \
        "server connections PgBouncer closed because its client left mid-query"
    assert_le "$1" "$(bouncer_log_count 'new connection to server')" \
        "server connections PgBouncer opened"
}

# ---- load ---------------------------------------------------------------------

# pgbench -C (a connection per transaction), 4 clients, through a cap of
# 2 + 2 per process, into PgBouncer with a pool of 2 server connections:
# every transaction succeeds, the shim reuses its connections, and the
# server never sees more than PgBouncer's pool.
test_pgbench_through_pgbouncer() {
    need_pgbouncer || return 0
    sql "drop database if exists pqshim_bouncer_bench with (force)" >/dev/null 2>&1
    sql "create database pqshim_bouncer_bench" >/dev/null
    on_exit "sql 'drop database if exists pqshim_bouncer_bench with (force)'"
    "$PGBENCH" -i -q -s 1 pqshim_bouncer_bench >"$T/init.out" 2>&1 ||
        fail "pgbench -i: $(cat "$T/init.out")"
    BOUNCER_SERVER_DB=pqshim_bouncer_bench bouncer_start default_pool_size=2

    sampler_start usename
    PQSHIM_POOL_SIZE=2 PQSHIM_MAX_OVERFLOW=2 PQSHIM_LOG="$T/shim.log" PQSHIM_LOG_LEVEL=debug \
        at_bouncer shimmed timeout 60 "$PGBENCH" -n -C -S -c 4 -j 4 -t 100 >"$T/out" 2>"$T/err" ||
        fail "pgbench: $(cat "$T/out" "$T/err")"
    sampler_stop
    grep -E '^(number of|tps)' "$T/out"
    assert_file_contains "$T/out" "number of transactions actually processed: 400/400" "transactions"
    assert_file_contains "$T/out" "number of failed transactions: 0 " "failed transactions"

    shim_summary "$T/shim.log"
    local checkouts
    checkouts=$(count_events "$T/shim.log" checkout)
    # pgbench connects once more before the run (to read the scale).
    assert_eq 401 "$checkouts" "checkouts (one per pgbench connect)"
    assert_shim_reused "$T/shim.log" 4
    shim_log_clean "$T/shim.log"

    echo "server connections of PgBouncer: peak $(sampler_peak "$BOUNCER_ROLE") (sampled)," \
        "$(bouncer_pool_servers) in SHOW POOLS after the run"
    assert_le 2 "$(sampler_peak "$BOUNCER_ROLE")" "peak server connections (default_pool_size)"
    assert_ge 1 "$(sampler_peak "$BOUNCER_ROLE")" "peak server connections (the sampler saw the run)"
    assert_le 2 "$(bouncer_pool_servers)" "server connections in SHOW POOLS"
    bouncer_kept_its_servers 2
    # Each checkin's DISCARD ALL is one more transaction through PgBouncer.
    local xacts
    xacts=$(bouncer_stat total_xact_count)
    echo "PgBouncer transactions: $xacts"
    assert_ge $((2 * 400)) "$xacts" "transactions through PgBouncer (pgbench's and the resets)"
}

# Short-lived processes (a CGI script, a cron job): each connects once,
# checks in (the reset goes out) and exits at once. PgBouncer keeps one
# server connection for all of them: the shim lets the reset finish before
# it says goodbye, instead of leaving PgBouncer's server mid-query.
test_short_lived_processes_keep_pgbouncer_servers() {
    need_pgbouncer || return 0
    bouncer_start default_pool_size=2
    local mark i out
    mark=$(server_log_mark)
    for i in $(seq 1 10); do
        out=$(PQSHIM_LOG="$T/shim.log" at_bouncer shimmed timeout 20 "$PSQL" -X -A -t -c "select $i" 2>&1) ||
            fail "psql $i: $out"
        assert_eq "$i" "$out" "psql $i"
    done
    assert_eq 10 "$(count_events "$T/shim.log" connect)" "connections to PgBouncer (one per process)"
    assert_eq 10 "$(grep -c ' event=close .*reason=exit ' "$T/shim.log")" "closes at exit"
    shim_log_clean "$T/shim.log"
    bouncer_kept_its_servers 1
    assert_eq 1 "$(server_log_since "$mark" | grep -c "connection authorized: user=$BOUNCER_ROLE")" \
        "server connections opened for the 10 processes"
}

# psycopg2, 8 threads x 20 connect / transaction / close through a cap of
# 2 + 1, over PgBouncer's loopback TCP listener. psycopg2 leaves each
# transaction open at close: the shim rolls it back, then resets.
test_psycopg2_threads_through_pgbouncer() {
    need_pgbouncer || return 0
    bouncer_start default_pool_size=2
    sampler_start usename
    PQSHIM_POOL_SIZE=2 PQSHIM_MAX_OVERFLOW=1 PQSHIM_LOG="$T/shim.log" PQSHIM_LOG_LEVEL=debug \
        shimmed timeout 60 "$PYTHON" "$HELPERS/pgbouncer_threads.py" "$(bouncer_tcp)" >"$T/out" 2>"$T/err" ||
        fail "psycopg2 threads: $(cat "$T/out" "$T/err")"
    sampler_stop
    cat "$T/out"
    assert_eq "ok=160 errors=0" "$(cat "$T/out")" "psycopg2 threads"
    assert_eq "" "$(cat "$T/err")" "errors"
    shim_summary "$T/shim.log"
    local checkouts
    checkouts=$(count_events "$T/shim.log" checkout)
    assert_eq 160 "$checkouts" "checkouts"
    assert_shim_reused "$T/shim.log" 3
    assert_file_contains "$T/shim.log" "target=postgres@127.0.0.1:$BOUNCER_PORT/$BOUNCER_DB" "target"
    shim_log_clean "$T/shim.log"
    assert_le 2 "$(sampler_peak "$BOUNCER_ROLE")" "peak server connections (default_pool_size)"
    assert_ge 1 "$(sampler_peak "$BOUNCER_ROLE")" "peak server connections (the sampler saw the run)"
    bouncer_kept_its_servers 2
}

# ---- session state ----------------------------------------------------------------

# session_script FILE: one process connects, leaves session state behind,
# finishes, connects again (a reused checkout) and checks the session.
session_script() {
    {
        echo "connect 1"
        local s
        for s in "${BOUNCER_DIRTY[@]}"; do echo "exec 1 $s"; done
        echo "exec 1 $BOUNCER_CHECK"
        echo "finish 1"
        echo "connect 2"
        echo "check 2"
        echo "exec 2 $BOUNCER_CHECK"
        echo "finish 2"
    } >"$1"
}

# The default reset (DISCARD ALL at checkin) goes through PgBouncer in
# transaction mode without an error and reaches the server connection,
# which PgBouncer does not reset itself in that mode
# (server_reset_query_always = 0): the next checkout, and the next client
# of PgBouncer without the shim, get a clean session. One server connection
# (default_pool_size = 1), so every statement meets the same session.
test_discard_all_through_pgbouncer() {
    need_pgbouncer || return 0
    bouncer_start default_pool_size=1
    local clean
    clean="|$(server_timezone)|true|0|$BOUNCER_ROLE"
    session_script "$T/s.script"
    PQSHIM_LOG="$T/shim.log" PQSHIM_LOG_LEVEL=debug at_bouncer pool_script_run s
    cat "$T/s.out"
    assert_file_contains "$T/s.out" "exec 1 ok $BOUNCER_LEFT" "the state the first user left"
    assert_file_contains "$T/s.out" "check 2 status=0 tx=0 " "the reused connection"
    assert_file_contains "$T/s.out" "exec 2 ok $clean" "the next checkout's session"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "connections to PgBouncer"
    assert_eq 1 "$(grep -c ' event=checkout .*reused=1 ' "$T/shim.log")" "reused checkouts"
    assert_eq 2 "$(count_events "$T/shim.log" checkin)" "checkins (each sent DISCARD ALL)"
    shim_log_clean "$T/shim.log"
    assert_eq "idle|DISCARD ALL" "$(sql "select state || '|' || query from pg_stat_activity where usename = '$BOUNCER_ROLE'")" \
        "the server connection's last statement (the shim's reset at the last checkin)"
    local other
    other=$(at_bouncer "$PSQL" -X -A -t -c "$BOUNCER_CHECK")
    assert_eq "$clean" "$other" "the next PgBouncer client (no shim)"
    bouncer_kept_its_servers 1
}

# PQSHIM_RESET=rollback and none only reset the role at a clean checkin:
# through PgBouncer in transaction mode, whatever else a session set
# outside a transaction stays on the server connection, for the next
# checkout and for every other client of PgBouncer (only the parameters
# PgBouncer tracks per client, such as timezone, follow the client); a SET
# ROLE does not.
test_reset_rollback_and_none_keep_session_state() {
    need_pgbouncer || return 0
    bouncer_start default_pool_size=1
    session_script "$T/s.script"
    local mode
    for mode in rollback none; do
        cp "$T/s.script" "$T/$mode.script"
        PQSHIM_RESET=$mode PQSHIM_LOG="$T/$mode.log" PQSHIM_LOG_LEVEL=debug at_bouncer pool_script_run "$mode"
        cat "$T/$mode.out"
        assert_file_contains "$T/$mode.out" "exec 2 ok ${BOUNCER_LEFT%|*}|$BOUNCER_ROLE" \
            "PQSHIM_RESET=$mode: the next checkout's session"
        assert_eq 1 "$(count_events "$T/$mode.log" connect)" "PQSHIM_RESET=$mode: connections to PgBouncer"
        shim_log_clean "$T/$mode.log"
        assert_eq "dirty|$(server_timezone)|false|1|$BOUNCER_ROLE" "$(at_bouncer "$PSQL" -X -A -t -c "$BOUNCER_CHECK")" \
            "PQSHIM_RESET=$mode: the next PgBouncer client (no shim)"
        at_bouncer "$PSQL" -X -q -c "discard all"
    done
}

# A program that finishes inside a transaction: under PgBouncer's
# transaction mode that client holds a server connection until the
# transaction ends. The shim rolls it back at checkin (PQSHIM_RESET=discard
# and rollback), so while the process keeps the connection idle in its
# pool, PgBouncer's only server connection serves other clients.
test_open_transaction_at_finish_frees_the_server() {
    need_pgbouncer || return 0
    bouncer_start default_pool_size=1
    local mode out
    for mode in discard rollback; do
        cat >"$T/$mode.script" <<EOF
connect 1
exec 1 begin
exec 1 select 1
finish 1
echo finished
wait $T/$mode.go
connect 2
check 2
finish 2
EOF
        PQSHIM_RESET=$mode PQSHIM_LOG="$T/$mode.log" PQSHIM_LOG_LEVEL=debug at_bouncer pool_script_bg "$mode"
        await_line "$T/$mode.out" '^finished'
        out=$(at_bouncer timeout 10 "$PSQL" -X -A -t -c "select 'served'" 2>&1) ||
            fail "PQSHIM_RESET=$mode: another client of PgBouncer: $out"
        assert_eq served "$out" "PQSHIM_RESET=$mode: another client of PgBouncer"
        touch "$T/$mode.go"
        wait_pid "$POOL_SCRIPT_PID" 20 || fail "pool_script: $(cat "$T/$mode.err")"
        assert_file_contains "$T/$mode.out" "check 2 status=0 tx=0 " "PQSHIM_RESET=$mode: the next checkout"
        assert_eq 1 "$(count_events "$T/$mode.log" connect)" "PQSHIM_RESET=$mode: connections to PgBouncer"
        shim_log_clean "$T/$mode.log"
    done
    bouncer_kept_its_servers 1
}

# session_split_script NAME: the first user's SET lands on server
# connection S1; a second client holds S1 in a transaction while the first
# user checks in, so a DISCARD ALL from the shim runs on a new S2; the
# holder commits (S1 is now PgBouncer's most recently used idle server, the
# one it hands out next: LIFO) and the first user checks out again.
# Continues when $T/NAME.go exists.
session_split_script() {
    cat >"$T/$1.script" <<EOF
connect 1
exec 1 set pqshim.leak = 'dirty'
connect 2 application_name=holder
exec 2 begin
exec 2 select 1
finish 1
echo checked_in
wait $T/$1.go
exec 2 commit
connect 3
exec 3 select coalesce(current_setting('pqshim.leak', true), '')
finish 3
finish 2
EOF
}

# The limit of any reset through transaction pooling: DISCARD ALL runs on
# the server connection PgBouncer picks for it, which need not be the one a
# SET outside a transaction landed on. With two server connections the
# first user's setting survives its DISCARD ALL and reaches its next
# checkout. PgBouncer's server_reset_query_always = 1 runs DISCARD ALL
# after every transaction instead: nothing survives a transaction, and
# PQSHIM_RESET=rollback (only the role is reset at a clean checkin) is
# enough.
test_session_state_through_transaction_pooling() {
    need_pgbouncer || return 0
    bouncer_start default_pool_size=2
    session_split_script split
    PQSHIM_LOG="$T/split.log" PQSHIM_LOG_LEVEL=debug at_bouncer pool_script_bg split
    await_line "$T/split.out" '^checked_in'
    # The shim's DISCARD ALL has run, on the second server connection.
    wait_until 10 output_is 1 sql "select count(*) from pg_stat_activity where usename = '$BOUNCER_ROLE' and query = 'DISCARD ALL' and state = 'idle'" ||
        fail "no server connection ran DISCARD ALL: $(sql "select state, query from pg_stat_activity where usename = '$BOUNCER_ROLE'")"
    touch "$T/split.go"
    wait_pid "$POOL_SCRIPT_PID" 20 || fail "pool_script: $(cat "$T/split.err")"
    cat "$T/split.out"
    assert_eq 2 "$(bouncer_log_count 'new connection to server')" \
        "server connections (S1, then S2 for the DISCARD ALL)"
    assert_file_contains "$T/split.out" "exec 3 ok dirty" \
        "server_reset_query_always = 0: the setting reached the next checkout"
    shim_log_clean "$T/split.log"

    bouncer_stop
    local opened
    opened=$(bouncer_log_count 'new connection to server')
    bouncer_start default_pool_size=2 server_reset_query_always=1
    session_split_script always
    PQSHIM_RESET=rollback PQSHIM_LOG="$T/always.log" PQSHIM_LOG_LEVEL=debug at_bouncer pool_script_bg always
    await_line "$T/always.out" '^checked_in'
    touch "$T/always.go"
    wait_pid "$POOL_SCRIPT_PID" 20 || fail "pool_script: $(cat "$T/always.err")"
    cat "$T/always.out"
    grep -qxE 'exec 3 ok ?' "$T/always.out" ||
        fail "server_reset_query_always = 1: the next checkout's session kept the setting: $(grep '^exec 3' "$T/always.out")"
    assert_eq 2 "$(($(bouncer_log_count 'new connection to server') - opened))" \
        "server connections (S1, then S2 for the shim's role reset; no DISCARD ALL)"
    shim_log_clean "$T/always.log"
}

# PgBouncer closes client connections idle longer than client_idle_timeout,
# pooled ones included: the next checkout finds the connection closed,
# drops it (close reason=dead) and connects again; the program sees nothing.
test_client_idle_timeout_connection_replaced() {
    need_pgbouncer || return 0
    bouncer_start default_pool_size=1 client_idle_timeout=1
    cat >"$T/idle.script" <<EOF
connect 1
exec 1 select 1
finish 1
echo idle
wait $T/idle.go
connect 2
exec 2 select 2
finish 2
EOF
    PQSHIM_LOG="$T/shim.log" PQSHIM_LOG_LEVEL=debug at_bouncer pool_script_bg idle
    await_line "$T/idle.out" '^idle'
    await_line "$T/pgbouncer.log" 'closing because: client_idle_timeout' 10
    touch "$T/idle.go"
    wait_pid "$POOL_SCRIPT_PID" 20 || fail "pool_script: $(cat "$T/idle.err")"
    cat "$T/idle.out"
    grep ' event=close ' "$T/shim.log"
    assert_file_contains "$T/idle.out" "exec 2 ok 2" "the query after PgBouncer closed the idle connection"
    assert_eq 1 "$(grep -c ' event=close .*reason=dead ' "$T/shim.log")" "closes of the connection PgBouncer closed"
    assert_eq 2 "$(count_events "$T/shim.log" connect)" "connections to PgBouncer"
    assert_eq 0 "$(grep -cE ': (error|warn) ' "$T/shim.log" || true)" "error and warn lines"
}

# ---- PgBouncer full -----------------------------------------------------------------

# max_client_conn = 2, both taken by another program for about a second:
# PgBouncer refuses the shim's connect ("no more connections allowed
# (max_client_conn)"); the shim retries (PQSHIM_RETRY_FULL=on, the default)
# and the program gets its connection once a slot frees, without an error.
test_max_client_conn_retry() {
    need_pgbouncer || return 0
    bouncer_start default_pool_size=2 max_client_conn=2
    "$PYTHON" "$HELPERS/pgbouncer_holder.py" "$(bouncer_tcp)" "$T/holder.ready" 1.0 >"$T/holder.out" 2>&1 &
    local holder=$!
    track_pid "$holder"
    wait_until 10 test -e "$T/holder.ready" || fail "holder: $(cat "$T/holder.out")"
    local t0 t1 out
    t0=$(date +%s%N)
    out=$(PQSHIM_LOG="$T/shim.log" at_bouncer shimmed timeout 30 "$PSQL" -X -A -t -c "select 42" 2>"$T/err") ||
        fail "psql: $(cat "$T/err")"
    t1=$(date +%s%N)
    wait_pid "$holder" 10 || fail "holder: $(cat "$T/holder.out")"
    grep ' event=retry ' "$T/shim.log" | head -n 3
    assert_eq 42 "$out" "psql's result"
    assert_eq "" "$(cat "$T/err")" "psql's errors"
    assert_ge 1 "$(count_events "$T/shim.log" retry)" "retry lines"
    grep -qE '^pqshim\[[0-9]+\]: warn event=retry target=[^ ]+ attempt=1 delay_ms=[0-9.]+ error=".*no more connections allowed \(max_client_conn\)' "$T/shim.log" ||
        fail "retry line: $(grep ' event=retry ' "$T/shim.log" | head -n 1)"
    assert_eq 0 "$(count_events "$T/shim.log" connect_failed)" "connect_failed lines"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "connections"
    assert_ge 700 $(((t1 - t0) / 1000000)) "ms until psql was done (it waited for a slot)"
    assert_ge 1 "$(bouncer_log_count 'no more connections allowed \(max_client_conn\)')" "refusals in PgBouncer's log"
}
