# Reliability under faults, against the real server: restarts in the middle
# of a connection storm, backends terminated under load, a server out of
# connection slots, refused and silent addresses, clients killed in a
# transaction, signals during a wait at the cap, and no file descriptors
# left. Under both policies: no crash, no hang, no descriptor growth, only
# clean libpq errors, and recovery with no operator action.

. "$ROOT/tests/lib/reliability.bash"

# output_is_zero CMD...: CMD prints 0 (for wait_until).
output_is_zero() {
    [ "$("$@")" = 0 ]
}

# ---- restarts during a storm ------------------------------------------------------

# restart_storm POLICY MODE: 10 threads connect/query/finish; the server
# restarts (MODE) right after the storm got going, and once it is back the
# storm goes on for 2 s.
restart_storm() {
    local policy=$1 mode=$2 threads=10 app="storm_$1_$2"
    export PQSHIM_POLICY=$policy PQSHIM_POOL_SIZE=3 PQSHIM_MAX_OVERFLOW=2 \
        PQSHIM_POOL_TIMEOUT=10 PQSHIM_LOG=$T/shim.log
    local cap=5
    [ "$policy" = capped ] && conn_sampler_start "$app"
    storm_bg storm -t $threads -d 2 -r "$T/ready" -w "$T/quiet" -c "application_name=$app"
    wait_until 10 test -e "$T/ready" || fail "the storm did not start: $(cat "$T/storm.err")"
    cluster_restart "$mode" || fail "$mode restart failed"
    touch "$T/quiet"
    wait_pid "$STORM_PID" 30 || { show "$T/storm.out" "$T/storm.err"; fail "storm failed"; }
    cat "$T/storm.out"
    local out="$T/storm.out" start
    start=$(field "$out" fds_start)
    assert_eq 0 "$(field "$out" unclean)" "unclean failures"
    assert_ge 1 "$(field "$out" ok)" "successful iterations"
    assert_ge 1 "$(($(field "$out" connect_errors) + $(field "$out" query_errors)))" \
        "failures while the server was down"
    assert_eq "$threads" "$(field "$out" recovered)" "threads whose last iteration succeeded"
    ! grep -q '^message [0-9]* pqshim: ' "$out" || fail "the pool refused a connect: $(grep '^message' "$out")"
    ! grep -q '(no message)' "$out" || fail "a failure without a message"
    assert_eq 0 "$(grep -c ': error event=' "$T/shim.log" || true)" "error lines in the shim log"
    if [ "$policy" = capped ]; then
        # Idle connections kept by the pool (3), the log file, the margin.
        assert_le $((start + 3 + 2)) "$(field "$out" fds_end)" "descriptors after the storm"
        assert_le $((start + cap + 3)) "$(field "$out" fds_peak)" "descriptors during the storm"
        local peak
        peak=$(conn_sampler_stop)
        echo "server connections: $peak (cap $cap)"
        assert_le "$cap" "$(field <(echo "$peak") peak)" "server connections"
    else
        assert_le $((start + 2)) "$(field "$out" fds_end)" "descriptors after the storm"
        assert_le $((start + threads + 3)) "$(field "$out" fds_peak)" "descriptors during the storm"
    fi
    wait_until 5 output_is_zero backends_of "$app" || fail "connections left on the server"
}

test_restart_fast_during_storm_null() {
    restart_storm null fast
}

test_restart_immediate_during_storm_null() {
    restart_storm null immediate
}

test_restart_fast_during_storm_capped() {
    restart_storm capped fast
}

test_restart_immediate_during_storm_capped() {
    restart_storm capped immediate
}

# ---- pg_terminate_backend under load -------------------------------------------------

# killer_run APP SECONDS: from one direct connection, every 50 ms,
# terminate a random backend of APP, alternately an idle and an active one;
# prints "idle=N active=M" (how many were terminated).
killer_run() {
    "$PYTHON" "$HELPERS/terminate_backends.py" "$1" "$2"
}

# terminate_storm POLICY: 6 threads connect, run a 50 ms query, finish and
# pause 150 ms, so that connections are both checked out (active) and, under
# the capped policy, idle in the pool most of the time; for 2.5 s random
# ones of each kind are terminated, then the storm goes on for 1.5 s.
terminate_storm() {
    local policy=$1 threads=6 app="term_$1"
    export PQSHIM_POLICY=$policy PQSHIM_POOL_SIZE=6 PQSHIM_MAX_OVERFLOW=0 \
        PQSHIM_POOL_TIMEOUT=10 PQSHIM_LOG=$T/shim.log
    storm_bg storm -t $threads -d 1.5 -w "$T/quiet" -s 150 -q "select pg_sleep(0.05)" \
        -r "$T/ready" -c "application_name=$app"
    wait_until 10 test -e "$T/ready" || fail "the storm did not start: $(cat "$T/storm.err")"
    local killed
    killed=$(killer_run "$app" 2.5) || fail "the killer failed"
    touch "$T/quiet"
    wait_pid "$STORM_PID" 30 || { show "$T/storm.out" "$T/storm.err"; fail "storm failed"; }
    cat "$T/storm.out"
    echo "terminated: $killed"
    grep -oE 'reason=[a-z_]+' "$T/shim.log" | sort | uniq -c
    local out="$T/storm.out"
    [ "$policy" = null ] || assert_ge 5 "$(field <(echo "$killed") idle)" "idle backends terminated"
    assert_ge 5 "$(field <(echo "$killed") active)" "active backends terminated"
    assert_eq 0 "$(field "$out" unclean)" "unclean failures"
    assert_eq 0 "$(field "$out" connect_errors)" "failed connects"
    assert_ge 1 "$(field "$out" query_errors)" "failed queries (the active ones terminated)"
    assert_eq "$threads" "$(field "$out" recovered)" "threads whose last iteration succeeded"
    assert_ge 1 "$(field "$out" ok)" "successful iterations"
    assert_eq 0 "$(grep -c ': error event=' "$T/shim.log" || true)" "error lines in the shim log"
    assert_le $(($(field "$out" fds_start) + 6 + 2)) "$(field "$out" fds_end)" "descriptors after the storm"
}

# With the zero-round-trip check (PQSHIM_PRE_PING=on), a pooled backend
# terminated a moment before a checkout (before it got round to acting on
# the signal and closing its socket) still looks alive: the program then
# gets a clean query error instead, as for a checked-out one.
test_terminate_backends_under_load_capped() {
    terminate_storm capped
}

# With PQSHIM_PRE_PING=always, every checkout pings: the backend acts on a
# pending termination before it answers, so every pooled backend killed
# before a checkout is found dead and replaced silently.
test_terminate_backends_under_load_capped_pre_ping_always() {
    PQSHIM_PRE_PING=always terminate_storm capped
    assert_ge 1 "$(grep -c 'event=close .*reason=dead' "$T/shim.log" || true)" "close reason=dead"
}

test_terminate_backends_under_load_null() {
    terminate_storm null
}

# ---- a server with no free connection slot -----------------------------------------------

# PQSHIM_RETRY_FULL=off: every connect fails at once with libpq's own
# error; the capped pool counts none of them, so once the slots are back it
# hands out exactly its cap again.
test_server_full_no_retry_pool_keeps_count() {
    export PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=2 PQSHIM_MAX_OVERFLOW=1 PQSHIM_POOL_TIMEOUT=1 \
        PQSHIM_RETRY_FULL=off
    full_holder_start -1

    # Many threads at once.
    PQSHIM_LOG=$T/storm.log storm_bg storm -t 6 -d 1 -c "user=$FULL_ROLE application_name=full_storm"
    wait_pid "$STORM_PID" 20 || { show "$T/storm.out" "$T/storm.err"; fail "storm failed"; }
    cat "$T/storm.out"
    assert_eq 0 "$(field "$T/storm.out" unclean)" "unclean failures"
    assert_ge 6 "$(field "$T/storm.out" connect_errors)" "refused connects"
    assert_file_contains "$T/storm.out" "remaining connection slots are reserved" "libpq's error"
    assert_eq 0 "$(count_events "$T/storm.log" retry)" "retry lines with PQSHIM_RETRY_FULL=off"
    ! grep -q '^message [0-9]* pqshim: ' "$T/storm.out" || fail "the pool refused a connect"

    # One process: four refused connects (two from other threads), then the
    # slots come back and the same pool must give exactly 2 + 1 again.
    local target="dbname=postgres user=$FULL_ROLE"
    cat >"$T/full.script" <<EOF
connect 0 $target
tconnect 1 $target
connect 2 $target
tconnect 3 $target
echo refused
wait $T/released
connect 0 $target
connect 1 $target
tconnect 2 $target
exec 0 select current_user
echo held
wait $T/checked
tconnect 3 $target
finish 0
finish 1
finish 2
EOF
    PQSHIM_LOG=$T/full.log PQSHIM_CONTROL=$T/ctl.sock shimmed exec "$TESTBIN/pool_script" \
        <"$T/full.script" >"$T/full.out" 2>"$T/full.err" &
    local pid=$!
    track_pid "$pid"
    wait_until 20 grep -q '^refused' "$T/full.out" || { show "$T/full.out" "$T/full.err"; fail "no refused line"; }
    assert_eq 4 "$(grep -c '^t\?connect [0-3] bad .*remaining connection slots are reserved' "$T/full.out")" \
        "connects refused by the server"
    assert_eq 0 "$(pool_value "$T/ctl.sock" "$FULL_ROLE@" open)" "open after the refusals"
    assert_eq 0 "$(pool_value "$T/ctl.sock" "$FULL_ROLE@" checked_out)" "checked out after the refusals"
    assert_eq 4 "$(pool_value "$T/ctl.sock" "$FULL_ROLE@" connect_errors_total)" "connect errors counted"

    touch "$T/release"
    wait_pid "$HOLDER_PID" 10 || fail "the holder failed: $(cat "$T/holder.out")"
    touch "$T/released"
    wait_until 20 grep -q '^held' "$T/full.out" || { show "$T/full.out" "$T/full.err"; fail "no held line"; }
    assert_eq 3 "$(pool_value "$T/ctl.sock" "$FULL_ROLE@" open)" "open with the cap held"
    assert_eq 3 "$(pool_value "$T/ctl.sock" "$FULL_ROLE@" checked_out)" "checked out with the cap held"
    touch "$T/checked"
    wait_pid "$pid" 20 || fail "pool_script failed: $(cat "$T/full.err")"
    cat "$T/full.out"
    assert_eq 3 "$(grep -cE '^t?connect [0-2] ok ' "$T/full.out")" "connects after the slots came back"
    assert_file_contains "$T/full.out" "exec 0 ok $FULL_ROLE" "query"
    assert_file_contains "$T/full.out" "tconnect 3 bad" "one over the cap"
    assert_file_contains "$T/full.out" "pqshim: pool limit of size 2 overflow 1 reached" "one over the cap"
    assert_eq 0 "$(count_events "$T/full.log" retry)" "retry lines"
}

# PQSHIM_RETRY_FULL on (the default): once both programs (psql under the
# null policy, 4 threads under capped) have been refused and retry, slots
# free up, and they succeed without an error.
test_server_full_retry_succeeds() {
    full_holder_start -1
    PQSHIM_LOG=$T/psql.log shimmed exec "$PSQL" -X -A -t -U "$FULL_ROLE" -c 'select 1' \
        >"$T/psql.out" 2>"$T/psql.err" &
    local psql_pid=$!
    track_pid "$psql_pid"
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=2 PQSHIM_MAX_OVERFLOW=2 PQSHIM_LOG=$T/storm.log \
        storm_bg storm -t 4 -n 1 -c "user=$FULL_ROLE application_name=retry_storm"
    await_line "$T/psql.log" 'event=retry' 30
    await_line "$T/storm.log" 'event=retry' 30
    touch "$T/release"
    wait_pid "$psql_pid" 20 || fail "psql failed: $(cat "$T/psql.err")"
    wait_pid "$STORM_PID" 20 || { show "$T/storm.out" "$T/storm.err"; fail "storm failed"; }
    wait_pid "$HOLDER_PID" 10 || fail "the holder failed: $(cat "$T/holder.out")"
    cat "$T/storm.out"
    grep -h 'event=retry' "$T/psql.log" "$T/storm.log" | head -n 5
    assert_eq 1 "$(cat "$T/psql.out")" "psql's result"
    assert_eq "" "$(cat "$T/psql.err")" "psql's errors"
    assert_eq 4 "$(field "$T/storm.out" ok)" "storm iterations that succeeded"
    assert_eq 0 "$(field "$T/storm.out" connect_errors)" "storm connect errors"
    local log
    for log in "$T/psql.log" "$T/storm.log"; do
        assert_ge 1 "$(count_events "$log" retry)" "retry lines in $log"
        grep -qE '^pqshim\[[0-9]+\]: warn event=retry target=[^ ]+ attempt=1 delay_ms=[0-9.]+ error=".*(remaining connection slots are reserved|too many clients already)' "$log" ||
            fail "retry line format in $log: $(grep retry "$log" | head -n 1)"
        assert_eq 0 "$(count_events "$log" connect_failed)" "connect_failed lines in $log"
    done
}

# ---- refused and silent addresses ------------------------------------------------------

# A port nothing listens on: every connect fails at once with libpq's own
# error. With a cap of 1 and no waiting, a slot lost to a failure would turn
# the next connect into the pool's error instead.
test_refused_port() {
    local port policy
    port=$(free_port)
    for policy in null capped; do
        PQSHIM_POLICY=$policy PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=0 \
            PQSHIM_LOG=$T/$policy.log storm_bg $policy -t 1 -n 6 -v \
            -c "host=127.0.0.1 port=$port connect_timeout=1"
        wait_pid "$STORM_PID" 20 || { show "$T/$policy.out" "$T/$policy.err"; fail "$policy: storm failed"; }
        cat "$T/$policy.out"
        assert_eq 6 "$(field "$T/$policy.out" connect_errors)" "$policy: refused connects"
        assert_eq 6 "$(grep -c '^iter .* connect_error .*Connection refused' "$T/$policy.out")" \
            "$policy: libpq's own error each time"
        local slow
        slow=$(awk '/^iter/ { sub("ms=", "", $4); if ($4 + 0 > 1000) print }' "$T/$policy.out")
        assert_eq "" "$slow" "$policy: refused connects slower than 1 s"
        assert_eq 6 "$(count_events "$T/$policy.log" connect_failed)" "$policy: connect_failed lines"
    done
}

# iter_ms FILE THREAD: the ms= of that thread's first iteration.
iter_ms() {
    sed -nE "s/^iter thread=$2 n=0 ms=([0-9.]+) .*/\\1/p" "$1" | cut -d. -f1
}

# A listener that never answers, with connect_timeout=1: libpq gives up on
# its own (after 2 s, its minimum); the pool makes nobody else wait for that.
# The four cases run side by side (each is one process with its own pools).
test_silent_listener() {
    silent_listener_start
    local silent="host=127.0.0.1 port=$SILENT_PORT connect_timeout=1"
    local real="application_name=real_side"
    local -a pids=()

    # Alone, null policy: the time libpq itself takes.
    PQSHIM_LOG=$T/alone.log storm_bg alone -t 1 -n 1 -v -c "$silent"
    pids+=("$STORM_PID")
    # Different targets, a cap of 1 each: the slow one does not hold up the
    # connect to the real server that starts at the same time.
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=10 \
        PQSHIM_LOG=$T/mixed.log storm_bg mixed -t 2 -n 1 -v -c "$silent" -c "$real"
    pids+=("$STORM_PID")
    # The same target, a cap of 2: two slow connects run side by side.
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=1 PQSHIM_POOL_TIMEOUT=10 \
        PQSHIM_LOG=$T/pair.log storm_bg pair -t 2 -n 1 -v -c "$silent"
    pids+=("$STORM_PID")
    # A cap of 1 and PQSHIM_POOL_TIMEOUT=0.5: the second thread gives up
    # after its own 0.5 s, not after the first one's 2 s.
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=0.5 \
        PQSHIM_LOG=$T/capped1.log storm_bg capped1 -t 2 -n 1 -v -c "$silent"
    pids+=("$STORM_PID")
    local pid
    for pid in "${pids[@]}"; do
        wait_pid "$pid" 20 || fail "storm $pid failed"
    done
    cat "$T/alone.out" "$T/mixed.out" "$T/pair.out" "$T/capped1.out"

    assert_file_contains "$T/alone.out" "timeout expired" "libpq's timeout error"
    local single
    single=$(iter_ms "$T/alone.out" 0)
    assert_le 4000 "$single" "ms until libpq gave up"

    assert_contains "$(grep '^iter thread=0' "$T/mixed.out")" "timeout expired" "the silent side"
    assert_contains "$(grep '^iter thread=1' "$T/mixed.out")" " ok" "the real side"
    assert_le 1500 "$(iter_ms "$T/mixed.out" 1)" "ms to connect to the real server"

    assert_eq 2 "$(grep -c '^iter .*timeout expired' "$T/pair.out")" "both time out in libpq"
    assert_le $((single + 1000)) "$(iter_ms "$T/pair.out" 0)" "thread 0's ms"
    assert_le $((single + 1000)) "$(iter_ms "$T/pair.out" 1)" "thread 1's ms"

    assert_eq 1 "$(grep -c '^iter .*timeout expired' "$T/capped1.out")" "one times out in libpq"
    local waiter
    waiter=$(grep '^iter .*pqshim: pool limit of size 1 overflow 0 reached' "$T/capped1.out") ||
        fail "no pool timeout for the waiting thread"
    waiter=$(echo "$waiter" | sed -nE 's/.* ms=([0-9]+).*/\1/p')
    assert_le 1500 "$waiter" "ms until the waiting thread got its error"
    assert_ge 450 "$waiter" "ms the waiting thread waited"
}

# ---- clients killed, signals ---------------------------------------------------------

# A shimmed psql and a shimmed psycopg2 program, each killed with SIGKILL
# while a transaction holds row locks: the server rolls back and frees the
# locks, and another shimmed program running all along sees nothing.
test_sigkill_mid_transaction() {
    sql "create table if not exists rel_kill (id int primary key, v text)" >/dev/null
    sql "delete from rel_kill; insert into rel_kill values (1, 'orig'), (3, 'orig')" >/dev/null
    export PQSHIM_POLICY=capped PQSHIM_LOG=$T/shim.log
    storm_bg bystander -t 4 -d 4 -s 10 -r "$T/ready" -c application_name=bystander
    wait_until 10 test -e "$T/ready" || fail "the bystander did not start"

    mkfifo "$T/psql.in"
    shimmed exec "$PSQL" -X -q -A -t <"$T/psql.in" >"$T/psql.out" 2>&1 &
    local psql_pid=$!
    track_pid "$psql_pid"
    exec 7>"$T/psql.in"
    on_exit "exec 7>&-"
    printf '%s\n' "begin;" "update rel_kill set v = 'psql' where id = 1;" \
        "insert into rel_kill values (2, 'psql');" "select pg_backend_pid();" '\echo ready' >&7
    wait_until 10 grep -q '^ready' "$T/psql.out" || fail "psql: $(cat "$T/psql.out")"
    local b1
    b1=$(head -n 1 "$T/psql.out")

    shimmed exec "$PYTHON" -c '
import sys, time, psycopg2
conn = psycopg2.connect("")
cur = conn.cursor()
cur.execute("update rel_kill set v = %s where id = 3", ("py",))
cur.execute("insert into rel_kill values (4, %s)", ("py",))
cur.execute("select pg_backend_pid()")
print(cur.fetchone()[0], "ready", flush=True)
time.sleep(60)
' >"$T/py.out" 2>&1 &
    local py_pid=$!
    track_pid "$py_pid"
    wait_until 10 grep -q 'ready' "$T/py.out" || fail "python: $(cat "$T/py.out")"
    local b2
    b2=$(cut -d' ' -f1 "$T/py.out")
    assert_eq "idle in transaction" "$(sql "select state from pg_stat_activity where pid = $b1")" "psql's backend"
    assert_eq "idle in transaction" "$(sql "select state from pg_stat_activity where pid = $b2")" "python's backend"

    kill -9 "$psql_pid" "$py_pid"
    wait "$psql_pid" 2>/dev/null || true
    wait "$py_pid" 2>/dev/null || true
    wait_until 5 output_is_zero sql "select count(*) from pg_stat_activity where pid in ($b1, $b2)" ||
        fail "the killed clients' backends are still there"
    assert_eq "1:orig,3:orig" "$(sql "select string_agg(id || ':' || v, ',' order by id) from rel_kill")" \
        "rows after the kills (rolled back)"
    # The row locks are gone: another shimmed program updates at once.
    local out
    out=$(PGOPTIONS="-c lock_timeout=2s" shimmed "$PSQL" -X -q -A -t \
        -c "update rel_kill set v = 'after' where id in (1, 3) returning id" 2>&1)
    assert_eq "$(printf '1\n3')" "$out" "update after the kills"

    wait_pid "$STORM_PID" 20 || { show "$T/bystander.out" "$T/bystander.err"; fail "the bystander failed"; }
    cat "$T/bystander.out"
    assert_ge 1 "$(field "$T/bystander.out" ok)" "bystander iterations"
    assert_eq 0 "$(field "$T/bystander.out" connect_errors)" "bystander connect errors"
    assert_eq 0 "$(field "$T/bystander.out" query_errors)" "bystander query errors"
}

# A connect waiting at the cap (size 1, overflow 0) while SIGALRM fires
# every 5 ms and SIGINT every 50 ms in that thread, handlers without
# SA_RESTART: the wait goes on to its real end, the connection handed over
# at checkin, or the timeout error.
test_signals_during_wait_at_cap() {
    export PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_LOG=$T/shim.log
    PQSHIM_POOL_TIMEOUT=5 shimmed exec "$TESTBIN/sigwait" 400 >"$T/handed.out" 2>&1 &
    local pid=$!
    track_pid "$pid"
    wait_pid "$pid" 20 || fail "sigwait failed: $(cat "$T/handed.out")"
    cat "$T/handed.out"
    local line
    line=$(grep '^waiter' "$T/handed.out")
    assert_contains "$line" "waiter ok" "handed over after the checkin"
    assert_contains "$line" "query=ok" "query on the handed connection"
    local ms
    ms=$(echo "$line" | sed -nE 's/.* ms=([0-9]+).*/\1/p')
    assert_ge 350 "$ms" "ms waited (until the holder finished after 400 ms)"
    assert_le 3000 "$ms" "ms waited"
    assert_ge 20 "$(echo "$line" | sed -nE 's/.* alarms=([0-9]+).*/\1/p')" "SIGALRMs during the wait"
    assert_ge 3 "$(echo "$line" | sed -nE 's/.* ints=([0-9]+).*/\1/p')" "SIGINTs during the wait"
    assert_ge 1 "$(count_events "$T/shim.log" wait)" "wait lines"

    PQSHIM_POOL_TIMEOUT=0.5 shimmed exec "$TESTBIN/sigwait" -1 >"$T/timeout.out" 2>&1 &
    pid=$!
    track_pid "$pid"
    wait_pid "$pid" 20 || fail "sigwait failed: $(cat "$T/timeout.out")"
    cat "$T/timeout.out"
    line=$(grep '^waiter' "$T/timeout.out")
    assert_contains "$line" "waiter bad" "no connection while the holder keeps it"
    assert_contains "$line" "pqshim: pool limit of size 1 overflow 0 reached" "the pool's timeout error"
    ms=$(echo "$line" | sed -nE 's/.* ms=([0-9]+).*/\1/p')
    assert_ge 450 "$ms" "ms waited (the whole timeout despite the signals)"
    assert_le 3000 "$ms" "ms waited"
    assert_ge 20 "$(echo "$line" | sed -nE 's/.* alarms=([0-9]+).*/\1/p')" "SIGALRMs during the wait"
}

# ---- out of descriptors -----------------------------------------------------------------

# With `ulimit -n 24`, connections are opened until one fails: the failure
# is libpq's clean error, the held ones keep working, and connects work
# again once some are finished.
test_descriptor_exhaustion() {
    local policy pids=()
    for policy in null capped; do
        # Size 0: a finished connection is closed, its descriptor freed.
        ( ulimit -n 24
          PQSHIM_POLICY=$policy PQSHIM_POOL_SIZE=0 PQSHIM_MAX_OVERFLOW=100 \
              PQSHIM_LOG=$T/$policy.log shimmed exec "$TESTBIN/fdhog" ) >"$T/$policy.out" 2>"$T/$policy.err" &
        pids+=($!)
        track_pid $!
    done
    for policy in null capped; do
        wait_pid "${pids[0]}" 30 || { show "$T/$policy.out" "$T/$policy.err"; fail "$policy: fdhog failed"; }
        pids=("${pids[@]:1}")
        cat "$T/$policy.out"
        local held
        held=$(sed -n 's/^held //p' "$T/$policy.out")
        assert_ge 5 "$held" "$policy: connections held"
        assert_file_contains "$T/$policy.out" "Too many open files" "$policy: libpq's error"
        assert_eq 0 "$(grep -c '^unclean' "$T/$policy.out" || true)" "$policy: unclean failures"
        assert_file_contains "$T/$policy.out" "queries ok $held" "$policy: queries on the held connections"
        assert_file_contains "$T/$policy.out" "reconnect 0 ok" "$policy: connect after some were finished"
        assert_file_contains "$T/$policy.out" "reconnect 1 ok" "$policy: connect after some were finished"
        assert_file_contains "$T/$policy.out" "final ok" "$policy: last connect"
        assert_ge 1 "$(count_events "$T/$policy.log" connect_failed)" "$policy: connect_failed lines"
        assert_eq "" "$(cat "$T/$policy.err")" "$policy: stderr"
    done
}

# Every descriptor taken before the first libpq call, with PQSHIM_CONTROL
# set: the control socket cannot be created (reported), the connect fails
# cleanly, and once descriptors are free connects work.
test_descriptor_exhaustion_control_socket() {
    ( ulimit -n 24
      PQSHIM_POLICY=capped PQSHIM_CONTROL=$T/ctl.sock PQSHIM_LOG=$T/shim.log \
          shimmed exec "$TESTBIN/fdhog" -x ) >"$T/out" 2>"$T/err" &
    local pid=$!
    track_pid "$pid"
    wait_pid "$pid" 30 || { show "$T/out" "$T/err" "$T/shim.log"; fail "fdhog failed"; }
    cat "$T/out" "$T/err"
    assert_file_contains "$T/out" "failed at 0: " "the first connect fails"
    assert_file_contains "$T/out" "Too many open files" "libpq's error"
    assert_eq 0 "$(grep -c '^unclean' "$T/out" || true)" "unclean failures"
    assert_file_contains "$T/out" "final ok" "connect once descriptors are free"
    # The log file could not be opened either: those lines went to stderr.
    assert_eq 1 "$(cat "$T/err" "$T/shim.log" | grep -c 'error event=control_failed')" "control_failed lines"
    assert_ge 1 "$(count_events "$T/shim.log" connect)" "connect lines in the log file once it opened"
}
