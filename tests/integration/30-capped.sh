# The capped pool (PQSHIM_POLICY=capped) as its users see it: the cap holds
# under load, connections are reused and come back clean, waiting ends in a
# clear error, and real clients (psql, pgbench, psycopg2, psycopg 3) work.
# Faults (dead connections, unresettable state, fork, exit): 31-capped-faults.sh.

. "$ROOT/tests/lib/capped.bash"

export PQSHIM_POLICY=capped

# 12 threads x 30 connect/query/finish loops through a cap of 2 + 2: the
# server never sees more than 4 connections, nobody gets an error, and the
# threads that found the pool full waited.
test_cap_holds_under_threads() {
    sampler_start
    PQSHIM_POOL_SIZE=2 PQSHIM_MAX_OVERFLOW=2 PQSHIM_LOG="$T/shim.log" \
        shimmed timeout 60 "$TESTBIN/pool_threads" -t 12 -n 30 -q "select pg_sleep(0.005)" \
        >"$T/out" 2>"$T/err" || fail "pool_threads failed: $(head -c 2000 "$T/err")"
    sampler_stop
    cat "$T/out"
    assert_contains "$(cat "$T/out")" "ok=360 errors=0" "all iterations succeed"
    assert_eq "" "$(cat "$T/err")" "errors reported by the client"
    local peak
    peak=$(sampler_peak)
    assert_le 4 "$peak" "peak server connections"
    assert_ge 1 "$peak" "peak server connections (the sampler saw the run)"
    assert_ge 1 "$(count_events "$T/shim.log" wait)" "wait lines"
    assert_file_contains "$T/shim.log" "cap=4" "wait lines name the cap"
    assert_eq 0 "$(count_events "$T/shim.log" timeout)" "timeouts"
    assert_eq 0 "$(count_events "$T/shim.log" deadlock)" "self-deadlocks"
}

# Sequential connects in one process get the same backend: one real
# connect, then reused checkouts.
test_sequential_connects_reuse_one_backend() {
    PQSHIM_LOG="$T/shim.log" PQSHIM_LOG_LEVEL=debug shimmed timeout 60 "$PYTHON" "$HELPERS/capped_sequential.py" >"$T/out"
    assert_eq 10 "$(wc -l <"$T/out")" "connects"
    assert_eq 1 "$(sort -u "$T/out" | wc -l)" "distinct backend pids"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "real connects"
    assert_eq 9 "$(grep -c 'event=checkout .*reused=1' "$T/shim.log")" "reused checkouts"
    assert_eq 1 "$(grep -c 'event=checkout .*reused=0' "$T/shim.log")" "fresh checkouts"
}

# Everything a session can carry is gone for the next user of the same
# backend: the open transaction and its row, SET, temp tables, prepared
# statements, LISTEN, advisory locks, session authorization and role.
test_reset_discard_server_state() {
    sql "drop role if exists pqshim_capped_r; create role pqshim_capped_r" >/dev/null
    on_exit "sql 'drop role if exists pqshim_capped_r'"
    cat >"$T/reset.script" <<'EOF'
connect 1
exec 1 set work_mem = '77MB'
exec 1 create temp table capped_tt (x int)
exec 1 prepare p as select 1
exec 1 listen capped_chan
exec 1 select pg_advisory_lock(4242)
exec 1 begin
exec 1 insert into capped_tt values (1)
check 1
finish 1
connect 2
check 2
exec 2 show work_mem
exec 2 select to_regclass('pg_temp.capped_tt') is null
exec 2 select count(*) from pg_prepared_statements
exec 2 prepare p as select 1
exec 2 select count(*) from pg_listening_channels()
exec 2 select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()
exec 2 set session authorization pqshim_capped_r
exec 2 select session_user || '/' || current_user
finish 2
connect 3
exec 3 select session_user || '/' || current_user
exec 3 set role pqshim_capped_r
exec 3 select current_user
finish 3
connect 4
exec 4 select session_user || '/' || current_user
check 4
finish 4
EOF
    PQSHIM_LOG="$T/shim.log" pool_script_run reset
    local pid
    pid=$(line_value "$T/reset.out" '^connect 1 ok pid=([0-9]+)')
    expect_transcript "$T/reset.out" -e "s/\\b$pid\\b/BACKEND/g" <<'EOF'
connect 1 ok pid=BACKEND
exec 1 ok
exec 1 ok
exec 1 ok
exec 1 ok
exec 1 ok
exec 1 ok
exec 1 ok
check 1 status=0 tx=2 nonblocking=0 pid=BACKEND
finish 1
connect 2 ok pid=BACKEND
check 2 status=0 tx=0 nonblocking=0 pid=BACKEND
exec 2 ok 4MB
exec 2 ok t
exec 2 ok 0
exec 2 ok
exec 2 ok 0
exec 2 ok 0
exec 2 ok
exec 2 ok pqshim_capped_r/pqshim_capped_r
finish 2
connect 3 ok pid=BACKEND
exec 3 ok postgres/postgres
exec 3 ok
exec 3 ok pqshim_capped_r
finish 3
connect 4 ok pid=BACKEND
exec 4 ok postgres/postgres
check 4 status=0 tx=0 nonblocking=0 pid=BACKEND
finish 4
EOF
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "real connects"
    # Seen from outside too: the backend holds no advisory lock any more.
    assert_eq 0 "$(sql "select count(*) from pg_locks where locktype = 'advisory'")" \
        "advisory locks on the server"
}

# What a C client set on its PGconn (non-blocking mode, notice processor,
# trace, error verbosity) does not reach the next user of the connection.
test_reset_client_side_state() {
    cat >"$T/client.script" <<EOF
connect 1
notice 1
exec 1 do \$\$begin raise notice 'before-reuse'; end\$\$
verbose 1
nonblock 1
check 1
finish 1
connect 2
check 2
exec 2 do \$\$begin raise notice 'after-reuse'; end\$\$
exec 2 select 1/0
exec 2 select 'untraced-query'
finish 2
EOF
    PQSHIM_LOG="$T/shim.log" pool_script_run client
    local pid
    pid=$(line_value "$T/client.out" '^connect 1 ok pid=([0-9]+)')
    expect_transcript "$T/client.out" -e "s/\\b$pid\\b/BACKEND/g" <<'EOF'
connect 1 ok pid=BACKEND
notice 1 ok
custom-notice 1: NOTICE:  before-reuse
exec 1 ok
verbose 1 ok
nonblock 1 ok
check 1 status=0 tx=0 nonblocking=1 pid=BACKEND
finish 1
connect 2 ok pid=BACKEND
check 2 status=0 tx=0 nonblocking=0 pid=BACKEND
exec 2 ok
exec 2 error PGRES_FATAL_ERROR ERROR:  division by zero
exec 2 ok untraced-query
finish 2
EOF
    # libpq's default notice processor prints to stderr.
    assert_eq "NOTICE:  after-reuse" "$(cat "$T/client.err")" "notice of the second user"
}

# psycopg2 installs a notice processor whose argument is the Python
# connection object: after that object is gone, the next user of the pooled
# connection must neither crash nor lose its notices.
test_reset_psycopg2_notice_processor() {
    PQSHIM_LOG="$T/shim.log" shimmed timeout 60 "$PYTHON" "$HELPERS/capped_notice_owner.py" >"$T/out" 2>"$T/err" ||
        fail "psycopg2 client failed: $(cat "$T/err")"
    assert_contains "$(cat "$T/out")" "ok " "psycopg2 client"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "real connects"
}

# PQSHIM_RESET=rollback: the transaction is rolled back, session settings
# and temp tables survive.
test_reset_rollback_keeps_settings() {
    cat >"$T/rb.script" <<'EOF'
connect 1
exec 1 set work_mem = '77MB'
exec 1 create temp table capped_tt (x int)
exec 1 begin
exec 1 insert into capped_tt values (1)
finish 1
connect 2
check 2
exec 2 show work_mem
exec 2 select count(*) from capped_tt
finish 2
EOF
    PQSHIM_RESET=rollback PQSHIM_LOG="$T/shim.log" pool_script_run rb
    local pid
    pid=$(line_value "$T/rb.out" '^connect 1 ok pid=([0-9]+)')
    expect_transcript "$T/rb.out" -e "s/\\b$pid\\b/BACKEND/g" <<'EOF'
connect 1 ok pid=BACKEND
exec 1 ok
exec 1 ok
exec 1 ok
exec 1 ok
finish 1
connect 2 ok pid=BACKEND
check 2 status=0 tx=0 nonblocking=0 pid=BACKEND
exec 2 ok 77MB
exec 2 ok 0
finish 2
EOF
}

# PQSHIM_RESET=none: settings pass to the next user as they are, but an open
# transaction is never handed on: that connection is closed.
test_reset_none() {
    cat >"$T/none.script" <<'EOF'
connect 1
exec 1 set work_mem = '77MB'
finish 1
connect 2
exec 2 show work_mem
exec 2 begin
finish 2
connect 3
check 3
exec 3 show work_mem
finish 3
EOF
    PQSHIM_RESET=none PQSHIM_LOG="$T/shim.log" pool_script_run none
    local pid1 pid3
    pid1=$(line_value "$T/none.out" '^connect 1 ok pid=([0-9]+)')
    pid3=$(line_value "$T/none.out" '^connect 3 ok pid=([0-9]+)')
    expect_transcript "$T/none.out" -e "s/\\b$pid1\\b/FIRST/g" -e "s/\\b$pid3\\b/SECOND/g" <<'EOF'
connect 1 ok pid=FIRST
exec 1 ok
finish 1
connect 2 ok pid=FIRST
exec 2 ok 77MB
exec 2 ok
finish 2
connect 3 ok pid=SECOND
check 3 status=0 tx=0 nonblocking=0 pid=SECOND
exec 3 ok 4MB
finish 3
EOF
    assert_file_contains "$T/shim.log" "reason=unsafe_state" "close of the open transaction"
    assert_eq 2 "$(count_events "$T/shim.log" connect)" "real connects"
}

# Whatever the reset mode, a session never reaches the next request with
# another role or session authorization than it authenticated with: holder
# 1 takes a superuser role (SET ROLE, set_config, SET ROLE committed in a
# transaction, SET SESSION AUTHORIZATION and a role on top), the next
# holder of the same backend checks who it is.
test_reset_never_hands_on_a_role() {
    sql "drop role if exists pqshim_app; drop role if exists pqshim_admin; drop role if exists pqshim_other;
         create role pqshim_admin superuser nologin; create role pqshim_app login;
         create role pqshim_other; grant pqshim_admin to pqshim_app" >/dev/null
    on_exit "sql 'drop role if exists pqshim_app; drop role if exists pqshim_admin; drop role if exists pqshim_other'"
    local who="select session_user || '/' || current_user || '/' || current_setting('is_superuser')"
    cat >"$T/role.script" <<EOF
connect 1 user=pqshim_app
exec 1 set role pqshim_admin
exec 1 $who
finish 1
connect 2 user=pqshim_app
exec 2 $who
exec 2 select set_config('role', 'pqshim_admin', false)
finish 2
connect 3 user=pqshim_app
exec 3 $who
exec 3 begin
exec 3 set role pqshim_admin
exec 3 commit
finish 3
connect 4 user=pqshim_app
exec 4 $who
finish 4
connect 5
exec 5 set session authorization pqshim_other
exec 5 $who
finish 5
connect 6
exec 6 $who
exec 6 set session authorization pqshim_app
exec 6 set role pqshim_admin
exec 6 select session_user || '/' || current_user
finish 6
connect 7
exec 7 $who
finish 7
EOF
    local mode app su
    for mode in discard rollback none; do
        PQSHIM_RESET=$mode PQSHIM_LOG="$T/$mode.log" PQSHIM_LOG_LEVEL=debug pool_script_run role
        app=$(line_value "$T/role.out" '^connect 1 ok pid=([0-9]+)')
        su=$(line_value "$T/role.out" '^connect 5 ok pid=([0-9]+)')
        echo "reset=$mode"
        expect_transcript "$T/role.out" -e "s/\\b$app\\b/APP/g" -e "s/\\b$su\\b/SU/g" <<'EOF'
connect 1 ok pid=APP
exec 1 ok
exec 1 ok pqshim_app/pqshim_admin/on
finish 1
connect 2 ok pid=APP
exec 2 ok pqshim_app/pqshim_app/off
exec 2 ok pqshim_admin
finish 2
connect 3 ok pid=APP
exec 3 ok pqshim_app/pqshim_app/off
exec 3 ok
exec 3 ok
exec 3 ok
finish 3
connect 4 ok pid=APP
exec 4 ok pqshim_app/pqshim_app/off
finish 4
connect 5 ok pid=SU
exec 5 ok
exec 5 ok pqshim_other/pqshim_other/off
finish 5
connect 6 ok pid=SU
exec 6 ok postgres/postgres/on
exec 6 ok
exec 6 ok
exec 6 ok pqshim_app/pqshim_admin
finish 6
connect 7 ok pid=SU
exec 7 ok postgres/postgres/on
finish 7
EOF
        assert_eq 2 "$(count_events "$T/$mode.log" connect)" "real connects (reset=$mode)"
        assert_eq 5 "$(grep -c 'event=checkout .*reused=1' "$T/$mode.log")" "reused checkouts (reset=$mode)"
    done
}

# What each reset mode hands to the next holder of the same backend, one row
# per kind of session state, as pqshim(7) lists it under Reset: what holder
# 1 leaves, then what holder 2 sees under discard, rollback and none
# ("-": not there).
KEEP_TABLE="\
setting|set work_mem = '77MB'|4MB|77MB|77MB
search_path|set search_path = pqshim_keep, public|\"\$user\", public|pqshim_keep, public|pqshim_keep, public
custom_setting|set app.tenant = 'tenant-1'|-|tenant-1|tenant-1
temp_table_rows|create temp table keep_tt (x int); insert into keep_tt values (1)|-|1|1
prepared_statements|prepare keep_p as select 1|0|1|1
advisory_locks|select pg_advisory_lock(4243)|0|1|1
listening|listen keep_chan|0|1|1
with_hold_cursors|begin; declare keep_cur cursor with hold for select 1; commit|0|1|1
currval|select nextval('pqshim_keep_seq')|-|1|1
client_encoding|set client_encoding = 'LATIN1'|UTF8|LATIN1|LATIN1
role|set role pqshim_keep_r|postgres/postgres|postgres/postgres|postgres/postgres
read_only|set session characteristics as transaction read only|off|on|on"

test_reset_modes_keep_what_the_manual_says() {
    sql "drop role if exists pqshim_keep_r; create role pqshim_keep_r;
         drop sequence if exists pqshim_keep_seq; create sequence pqshim_keep_seq;
         grant usage on sequence pqshim_keep_seq to pqshim_keep_r" >/dev/null
    on_exit "sql 'drop function if exists public.pqshim_keep_state(); drop sequence if exists pqshim_keep_seq; drop role if exists pqshim_keep_r'"
    sql "create or replace function public.pqshim_keep_state() returns text language plpgsql as \$f\$
        declare r text; cv text;
        begin
            begin execute 'select count(*) from pg_temp.keep_tt' into r;
            exception when others then r := '-'; end;
            begin cv := currval('public.pqshim_keep_seq')::text;
            exception when others then cv := '-'; end;
            return concat_ws(' ; ',
                'setting=' || current_setting('work_mem'),
                'search_path=' || current_setting('search_path'),
                'custom_setting=' || coalesce(nullif(current_setting('app.tenant', true), ''), '-'),
                'temp_table_rows=' || r,
                'prepared_statements=' || (select count(*) from pg_prepared_statements),
                'advisory_locks=' || (select count(*) from pg_locks
                                      where locktype = 'advisory' and pid = pg_backend_pid()),
                'listening=' || (select count(*) from pg_listening_channels()),
                'with_hold_cursors=' || (select count(*) from pg_cursors),
                'currval=' || cv,
                'client_encoding=' || current_setting('client_encoding'),
                'role=' || session_user || '/' || current_user,
                'read_only=' || current_setting('default_transaction_read_only'));
        end \$f\$" >/dev/null
    local mode col item leaves discard rollback none expected got
    for mode in discard rollback none; do
        case $mode in discard) col=3 ;; rollback) col=4 ;; none) col=5 ;; esac
        sql "alter sequence pqshim_keep_seq restart" >/dev/null
        {
            echo "connect 1"
            while IFS='|' read -r item leaves discard rollback none; do
                echo "exec 1 $leaves"
            done <<<"$KEEP_TABLE"
            echo "finish 1"
            echo "connect 2"
            echo "exec 2 select public.pqshim_keep_state()"
            echo "finish 2"
        } >"$T/keep.script"
        PQSHIM_RESET=$mode PQSHIM_LOG="$T/keep-$mode.log" PQSHIM_LOG_LEVEL=debug pool_script_run keep
        expected=$(awk -F'|' -v c=$col '{ printf "%s%s=%s", (NR > 1 ? " ; " : ""), $1, $c }' <<<"$KEEP_TABLE")
        got=$(sed -n 's/^exec 2 ok //p' "$T/keep.out")
        echo "reset=$mode: $got"
        assert_eq 0 "$(grep -c '^exec 1 error' "$T/keep.out")" "holder 1's statements that failed (reset=$mode)"
        assert_eq "$expected" "$got" "what holder 2 sees (reset=$mode)"
        assert_eq 1 "$(grep -c 'event=checkout .*reused=1' "$T/keep-$mode.log")" "reused checkouts (reset=$mode)"
    done
}

# Size 1, overflow 0, timeout 0.3 s: while one thread holds the connection,
# another one waits 0.3 s and gets an error that says why.
test_pool_timeout_message() {
    cat >"$T/to.script" <<'EOF'
connect 0
tconnect 1
finish 1
finish 0
connect 2
finish 2
EOF
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=0.3 \
        PQSHIM_LOG="$T/shim.log" pool_script_run to
    cat "$T/to.out"
    local line ms target
    line=$(grep '^tconnect 1 ' "$T/to.out")
    assert_contains "$line" "tconnect 1 bad" "second thread's connect"
    target="$PGUSER@$PGHOST:$PGPORT/$PGDATABASE"
    assert_contains "$line" "error=pqshim: pool limit of size 1 overflow 0 reached for $target, connection timed out, timeout 0.30s" \
        "error message"
    ms=$(line_value "$T/to.out" '^tconnect 1 bad ms=([0-9]+)')
    assert_ge 280 "$ms" "time waited (ms)"
    assert_le 2000 "$ms" "time waited (ms)"
    assert_contains "$(cat "$T/to.out")" "connect 2 ok" "connect after the holder finished"
    assert_eq 1 "$(count_events "$T/shim.log" timeout)" "timeout lines"
    assert_file_contains "$T/shim.log" "event=timeout target=$target size=1 overflow=0" \
        "timeout line"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "real connects"
}

# A thread that holds the only connection and asks for another gets an
# immediate error, not a 30 s wait.
test_self_deadlock_is_immediate() {
    cat >"$T/dl.script" <<'EOF'
connect 0
connect 1
exec 0 select 1
finish 1
finish 0
EOF
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=30 \
        PQSHIM_LOG="$T/shim.log" pool_script_run dl
    cat "$T/dl.out"
    assert_contains "$(grep '^connect 1 ' "$T/dl.out")" "connect 1 bad" "second connect"
    assert_contains "$(grep '^connect 1 ' "$T/dl.out")" \
        "pqshim: this thread already holds all 1 connections allowed for $PGUSER@$PGHOST:$PGPORT/$PGDATABASE" \
        "error message"
    assert_le 2000 "$(line_value "$T/dl.out" '^connect 1 bad ms=([0-9]+)')" "time to the error (ms)"
    assert_contains "$(cat "$T/dl.out")" "exec 0 ok 1" "the held connection still works"
    assert_eq 1 "$(count_events "$T/shim.log" deadlock)" "deadlock lines"
}

# psql's \connect opens the new connection before it finishes the old one.
# At a cap of 1 that is a self-deadlock: psql shows the pool's error at
# once. Interactive psql then keeps the old connection; in a script psql
# itself drops it (its own rule), which ends the script with an error.
test_psql_connect_at_cap_one() {
    export PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=30
    printf '%s\n' 'select 10 + pg_backend_pid();' '\connect' 'select 20 + pg_backend_pid();' '\q' \
        >"$T/in.sql"
    # A pseudo-terminal makes psql interactive.
    local start=$SECONDS
    PQSHIM_LOG="$T/shim.log" shimmed timeout 20 script -qec "$PSQL -X -P pager=off" /dev/null \
        <"$T/in.sql" >"$T/tty.out" 2>&1 || fail "interactive psql failed: $(cat -v "$T/tty.out")"
    tr -d '\r' <"$T/tty.out" >"$T/tty.txt"
    cat "$T/tty.txt"
    assert_le 10 $((SECONDS - start)) "seconds for the interactive session"
    assert_file_contains "$T/tty.txt" "pqshim: this thread already holds all 1 connections allowed" \
        "the pool's error shown by psql"
    assert_file_contains "$T/tty.txt" "Previous connection kept" "psql keeps the old connection"
    local pid
    pid=$(sed -n '/?column?/{n;n;p}' "$T/tty.txt" | head -n 1 | tr -d ' ')
    [ -n "$pid" ] || fail "no result in the psql session"
    assert_eq "$((pid + 10))" "$(sed -n '/?column?/{n;n;p}' "$T/tty.txt" | sed -n 2p | tr -d ' ')" \
        "the query after \\connect runs on the same backend"
    assert_eq 1 "$(count_events "$T/shim.log" deadlock)" "deadlock lines"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "real connects"

    # Script mode: the same error, then psql is not connected any more.
    local rc=0
    PQSHIM_LOG="$T/shim2.log" shimmed timeout 30 "$PSQL" -X -A -t -c 'select 1' -c '\connect' \
        -c 'select 2' >"$T/script.out" 2>&1 || rc=$?
    cat "$T/script.out"
    assert_eq 1 "$rc" "psql exit status"
    assert_file_contains "$T/script.out" "pqshim: this thread already holds all 1 connections allowed" \
        "the pool's error shown by psql"
    assert_eq 1 "$(count_events "$T/shim2.log" connect)" "real connects"

    # Above a cap of 1, \connect works and the old connection goes back idle.
    PQSHIM_MAX_OVERFLOW=1 PQSHIM_LOG="$T/shim3.log" shimmed timeout 30 "$PSQL" -X -A -t -c 'select 1' \
        -c '\connect' -c 'select 2' >"$T/ok.out" 2>&1 || fail "psql: $(cat "$T/ok.out")"
    assert_contains "$(cat "$T/ok.out")" "2" "query after \\connect"
    assert_eq 0 "$(count_events "$T/shim3.log" deadlock)" "deadlock lines"
}

# psql through the pool, and pgbench -C (a connection per transaction): no
# failures, no more server connections than clients, and faster than the
# same run without the pool.
test_psql_and_pgbench_through_pool() {
    local out
    out=$(PQSHIM_LOG="$T/psql.log" shimmed timeout 30 "$PSQL" -X -A -t -c 'select 40 + 2')
    assert_eq 42 "$out" "psql through the pool"
    assert_eq 1 "$(count_events "$T/psql.log" connect)" "psql's connects"
    assert_file_contains "$T/psql.log" "reason=exit" "psql's connection closed at exit"

    sql "drop database if exists pqshim_capped_bench" >/dev/null
    sql "create database pqshim_capped_bench" >/dev/null
    on_exit "sql 'drop database if exists pqshim_capped_bench with (force)'"
    "$PGBENCH" -i -q -s 1 pqshim_capped_bench >"$T/init.out" 2>&1 ||
        fail "pgbench -i: $(cat "$T/init.out")"

    "$PGBENCH" -C -S -c 8 -j 8 -T 3 pqshim_capped_bench >"$T/direct.out" 2>&1 ||
        fail "direct pgbench: $(cat "$T/direct.out")"
    sampler_start "datname"
    PQSHIM_LOG="$T/bench.log" shimmed timeout 30 "$PGBENCH" -C -S -c 8 -j 8 -T 3 pqshim_capped_bench \
        >"$T/capped.out" 2>&1 || fail "pgbench through the pool: $(cat "$T/capped.out")"
    sampler_stop
    local direct capped
    direct=$(sed -nE 's/^tps = ([0-9]+).*/\1/p' "$T/direct.out")
    capped=$(sed -nE 's/^tps = ([0-9]+).*/\1/p' "$T/capped.out")
    echo "pgbench -C -S -c 8 -j 8 -T 3: direct $direct tps, capped pool $capped tps"
    assert_file_contains "$T/capped.out" "number of failed transactions: 0 " "failed transactions"
    assert_le 8 "$(sampler_peak pqshim_capped_bench)" "peak server connections"
    assert_ge 1 "$(sampler_peak pqshim_capped_bench)" "peak server connections"
    [ "$capped" -gt "$direct" ] || fail "capped $capped tps is not above direct $direct tps"
}

# psycopg2 in 8 threads through a cap of 2 + 1.
test_psycopg2_threads() {
    sampler_start
    PQSHIM_POOL_SIZE=2 PQSHIM_MAX_OVERFLOW=1 PQSHIM_LOG="$T/shim.log" \
        shimmed timeout 60 "$PYTHON" "$HELPERS/capped_threads.py" >"$T/out" 2>"$T/err" || fail "psycopg2 threads: $(cat "$T/err")"
    sampler_stop
    assert_eq "done=200 errors=0" "$(head -n 1 "$T/out")" "psycopg2 threads: $(cat "$T/out")"
    assert_le 3 "$(sampler_peak)" "peak server connections"
    assert_ge 1 "$(sampler_peak)" "peak server connections"
}

# Each target (database, user) has its own pool and its own cap: a checkout
# always gets a backend of the database and user it asked for.
test_separate_pools_per_target() {
    sql "drop database if exists pqshim_capped_db2" >/dev/null
    sql "drop role if exists pqshim_capped_u2" >/dev/null
    sql "create role pqshim_capped_u2 login" >/dev/null
    sql "create database pqshim_capped_db2" >/dev/null
    on_exit "sql 'drop database if exists pqshim_capped_db2 with (force)'"
    on_exit "sql 'drop role if exists pqshim_capped_u2'"
    local q="exec 0 select pg_backend_pid() || ' ' || current_database() || ' ' || current_user"
    {
        for round in 1 2 3; do
            printf 'connect 0 dbname=postgres\n%s\nfinish 0\n' "$q"
            printf 'connect 0 dbname=pqshim_capped_db2\n%s\nfinish 0\n' "$q"
            printf 'connect 0 user=pqshim_capped_u2\n%s\nfinish 0\n' "$q"
        done
    } >"$T/targets.script"
    PQSHIM_LOG="$T/shim.log" pool_script_run targets
    grep '^exec' "$T/targets.out" | sed 's/^exec 0 ok //' >"$T/seen"
    cat "$T/seen"
    assert_eq 9 "$(wc -l <"$T/seen")" "checkouts"
    # Three backends, each always with the same database and user.
    assert_eq 3 "$(sort -u "$T/seen" | wc -l)" "distinct (backend, database, user)"
    assert_eq 3 "$(cut -d' ' -f1 "$T/seen" | sort -u | wc -l)" "distinct backends"
    assert_eq 3 "$(grep -c ' postgres postgres$' "$T/seen")" "postgres/postgres checkouts"
    assert_eq 3 "$(grep -c ' pqshim_capped_db2 postgres$' "$T/seen")" "db2/postgres checkouts"
    assert_eq 3 "$(grep -c ' postgres pqshim_capped_u2$' "$T/seen")" "postgres/u2 checkouts"
    assert_eq 3 "$(count_events "$T/shim.log" connect)" "real connects"

    # Under load, each target stays within its own cap of 2.
    sampler_start "datname || '/' || usename"
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=1 PQSHIM_LOG="$T/load.log" \
        shimmed timeout 60 "$TESTBIN/pool_threads" -t 9 -n 15 -q "select pg_sleep(0.01)" \
        -c dbname=postgres -c dbname=pqshim_capped_db2 -c user=pqshim_capped_u2 \
        >"$T/load.out" 2>"$T/load.err" || fail "pool_threads: $(head -c 2000 "$T/load.err")"
    sampler_stop
    assert_contains "$(cat "$T/load.out")" "ok=135 errors=0" "all iterations succeed"
    local key
    for key in postgres/postgres pqshim_capped_db2/postgres postgres/pqshim_capped_u2; do
        assert_le 2 "$(sampler_peak "$key")" "peak server connections of $key"
        assert_ge 1 "$(sampler_peak "$key")" "peak server connections of $key"
    done
    assert_le 6 "$(sampler_peak)" "peak server connections of all targets"
}

# PQconnectStart + PQconnectPoll: a pooled connection is ready within the
# first polls; psycopg 3 (which always connects that way) reuses one backend.
test_async_connects() {
    cat >"$T/async.script" <<'EOF'
start 1
exec 1 select 1
finish 1
start 2
exec 2 select 2
finish 2
EOF
    PQSHIM_LOG="$T/shim.log" pool_script_run async
    local pid
    pid=$(line_value "$T/async.out" '^start 1 ok pid=([0-9]+)')
    # The reused connection is ready at once, or after the reset's answer
    # arrives, read in the program's own poll loop (a round or two).
    local polls
    polls=$(line_value "$T/async.out" '^start 2 ok pid=[0-9]+ polls=([0-9]+)')
    assert_le 3 "$polls" "polls of the reused connection"
    expect_transcript "$T/async.out" -e "s/\\b$pid\\b/BACKEND/g" \
        -e 's/^(start [12] ok pid=BACKEND) polls=[0-9]+ first=[a-z]+/\1/' <<'EOF'
start 1 ok pid=BACKEND
exec 1 ok 1
finish 1
start 2 ok pid=BACKEND
exec 2 ok 2
finish 2
EOF
    PQSHIM_LOG="$T/psycopg.log" PQSHIM_LOG_LEVEL=debug shimmed timeout 60 "$PYTHON" "$HELPERS/capped_psycopg3.py" >"$T/out" 2>"$T/err" ||
        fail "psycopg 3 client: $(cat "$T/err")"
    cat "$T/out"
    assert_eq 5 "$(tail -n +2 "$T/out" | wc -l)" "psycopg 3 connects"
    assert_eq 1 "$(tail -n +2 "$T/out" | sort -u | wc -l)" "distinct backend pids"
    assert_eq 1 "$(count_events "$T/psycopg.log" connect)" "real connects"
    assert_eq 4 "$(grep -c 'event=checkout .*reused=1' "$T/psycopg.log")" "reused checkouts"
}
