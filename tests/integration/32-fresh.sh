# A pooled connection must be indistinguishable from a new one (except that
# it is faster): dead ones never reach the program, the shim's own reads
# never print into it, stale cancels hit nobody, every limit holds for any
# target, and nothing the shim does on the program's behalf waits without
# bound.

. "$ROOT/tests/lib/capped.bash"
. "$ROOT/tests/lib/pgbouncer.bash"

export PQSHIM_POLICY=capped
CTL="$BUILD/pqshimctl"

# ---- dead pooled connections ------------------------------------------------

# killed_rounds ROUNDS CONNINFO: tests/helpers/fresh_killed_rounds.py
# through the shim.
killed_rounds() {  # ROUNDS CONNINFO
    PQSHIM_LOG=none shimmed "$PYTHON" "$HELPERS/fresh_killed_rounds.py" "$1" "$2" \
        >"$T/killed.out" 2>"$T/killed.err" || { cat "$T/killed.out" "$T/killed.err"; fail "program failed"; }
    cat "$T/killed.out"
    assert_eq "errors 0" "$(tail -n 1 "$T/killed.out")" "errors the program saw"
    assert_eq 2 "$(wc -l <"$T/killed.out")" "lines the program printed"
    # On a very busy machine fewer rounds fit in the program's 40 s.
    assert_ge 20 "$(line_value "$T/killed.out" '^rounds ([0-9]+)')" "rounds run"
    assert_eq "" "$(cat "$T/killed.err")" "the program's stderr"
}

# A CPU hog per core while the rounds run: the checks must not depend on
# timing. Ended with the test.
cpu_load() {
    local i
    for i in 1 2; do
        timeout 60 sh -c 'while :; do :; done' &
        track_pid $!
    done
}

test_killed_idle_connections_unix() {
    cpu_load
    killed_rounds 100 ""
}

test_killed_idle_connections_tcp() {
    killed_rounds 100 "host=127.0.0.1"
}

# The server's idle_session_timeout ends pooled sessions while they sit
# idle: nothing is printed, nothing fails, and the log says what the server
# said.
test_idle_session_timeout_is_silent() {
    PQSHIM_LOG=$T/shim.log shimmed "$PYTHON" "$HELPERS/connect_cycles.py" \
        "options='-c idle_session_timeout=150'" 12 0.4 >"$T/out" 2>"$T/err" ||
        { cat "$T/out" "$T/err"; fail "program failed"; }
    cat "$T/out"
    assert_eq "errors 0" "$(cat "$T/out")" "program output"
    assert_eq "" "$(cat "$T/err")" "the program's stderr"
    assert_ge 8 "$(grep -c 'event=close .*reason=dead .*server_said="FATAL: terminating connection due to idle-session timeout"' "$T/shim.log")" \
        "dead closes naming the server's message"
}

# A server restart between requests: the pooled connections are dead, the
# program sees nothing of it.
test_restart_is_silent() {
    printf '%s\n' 'connect 1' 'connect 2' 'connect 3' 'finish 1' 'finish 2' 'finish 3' \
        'echo ready' "wait $T/go" 'connect 4' 'exec 4 select 4' 'finish 4' \
        'connect 5' 'exec 5 select 5' 'finish 5' >"$T/restart.script"
    PQSHIM_LOG=none pool_script_bg restart
    await_line "$T/restart.out" '^ready'
    cluster_restart fast || fail "restart failed"
    touch "$T/go"
    wait_pid "$POOL_SCRIPT_PID" 20 || fail "client failed"
    cat "$T/restart.out"
    assert_contains "$(cat "$T/restart.out")" "exec 4 ok 4" "first query after the restart"
    assert_contains "$(cat "$T/restart.out")" "exec 5 ok 5" "second query after the restart"
    assert_eq "" "$(cat "$T/restart.err")" "the program's stderr"
}

# PgBouncer's client_idle_timeout closes pooled client connections while
# they sit idle in the shim's pool: the program sees nothing of it.
test_pgbouncer_client_idle_timeout_is_silent() {
    need_pgbouncer || return 0
    bouncer_start client_idle_timeout=1
    PQSHIM_LOG=$T/shim.log shimmed "$PYTHON" "$HELPERS/connect_cycles.py" \
        "$(bouncer_tcp)" 4 1.6 >"$T/out" 2>"$T/err" ||
        { cat "$T/out" "$T/err"; fail "program failed"; }
    cat "$T/out"
    assert_eq "errors 0" "$(cat "$T/out")" "program output"
    assert_eq "" "$(cat "$T/err")" "the program's stderr"
    assert_ge 2 "$(grep -c 'event=close .*reason=dead' "$T/shim.log")" "dead closes"
}

# ---- what a client observes --------------------------------------------------

# The same scripted session, four times in one process: directly, and
# through a pool of one that hands the one backend from round to round.
# Everything but the backend pid must be equal, stderr included. Each
# round leaves behind settings, prepared statements, cursors, temporary
# tables, listeners, unread notifications, advisory locks, sequence
# state, another client encoding, error text (in or out of a failed
# transaction), and a cancel object that the next round fires; the last
# round cancels its own query.
test_differential_session() {
    "$TESTBIN/fresh_session" 4 >"$T/direct.out" 2>"$T/direct.err" ||
        { cat "$T/direct.out" "$T/direct.err"; fail "direct run failed"; }
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_LOG=$T/shim.log \
        shimmed "$TESTBIN/fresh_session" 4 >"$T/pooled.out" 2>"$T/pooled.err" ||
        { cat "$T/pooled.out" "$T/pooled.err"; fail "pooled run failed"; }
    diff -u <(grep -v '^pid ' "$T/direct.out") <(grep -v '^pid ' "$T/pooled.out") >&2 ||
        fail "the pooled session differs from the direct one (diff above)"
    diff -u "$T/direct.err" "$T/pooled.err" >&2 || fail "stderr differs"
    assert_eq 1 "$(grep '^pid ' "$T/pooled.out" | sort -u | wc -l)" "backends used by the pooled run"
    assert_eq 3 "$(grep -c '^query under stale cancel: PGRES_TUPLES_OK' "$T/pooled.out")" \
        "queries untouched by the previous round's cancel"
    assert_eq 1 "$(grep -c '^query under own cancel: 57014' "$T/pooled.out")" "own cancels that worked"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "server connections"
}

# Without DISCARD ALL the server-side state stays (documented), but the
# client side is a fresh connection's: no error text, no transaction.
test_rollback_reset_leaves_no_error_text() {
    PQSHIM_RESET=rollback PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_LOG=none \
        shimmed "$TESTBIN/fresh_session" 4 >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err"; fail "run failed"; }
    assert_eq 1 "$(grep '^pid ' "$T/out" | sort -u | wc -l)" "backends used"
    assert_eq "error: |error: |error: |error: " "$(grep '^error:' "$T/out" | paste -sd '|')" \
        "error text at connect"
    assert_eq 4 "$(grep -c '^state: status=0 tx=0 ' "$T/out")" "idle transaction state at connect"
}

# psycopg 3's pure-Python implementation reaches libpq through ctypes:
# its cancel objects go through the shim too. Its own cancels work; one kept
# from a finished connection leaves the next user's query alone.
test_psycopg3_cancel_objects() {
    "$PYTHON" -c 'import psycopg' 2>/dev/null || { skip_test "python3-psycopg not installed"; return 0; }
    PSYCOPG_IMPL=python PQSHIM_LOG=$T/shim.log shimmed timeout 30 "$PYTHON" "$HELPERS/fresh_psycopg3.py" >"$T/out" 2>"$T/err" ||
        { cat "$T/out" "$T/err"; fail "program failed"; }
    assert_eq "cancelled|cancelled|cancelled|same backend True, query done" "$(paste -sd '|' "$T/out")" \
        "program output"
    # A session on which a cancel was sent is closed at checkin, never
    # handed on: one server connection per cancelled round, one for the rest.
    assert_eq 3 "$(grep -c 'event=close .*reason=cancel' "$T/shim.log")" "sessions closed after a cancel"
    assert_eq 4 "$(count_events "$T/shim.log" connect)" "server connections"
}

# A watchdog thread cancels request N while the main thread finishes it and
# runs request N+1 on a pool of one: the cancel, sent by libpq to the
# postmaster and delivered to the backend later, must never stop N+1's
# query. Nor may PQrequestCancel just before PQfinish, or a PGcancel kept
# past PQfinish. A cancel aimed at the holder's own query still works.
test_cancel_racing_checkin_spares_next_holder() {
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_LOG=$T/shim.log \
        shimmed timeout 120 "$TESTBIN/cancel_race" "" 200 >"$T/out" 2>"$T/err" ||
        { cat "$T/out" "$T/err"; fail "cancel_race failed"; }
    cat "$T/out"
    assert_eq "race rounds=200 cancelled=0 errors=0" \
        "$(grep '^race ' "$T/out" | sed 's/ same_backend=.*//')" "next holders' queries cancelled"
    assert_eq "request rounds=50 cancelled=0 errors=0 same_backend=0" "$(grep '^request ' "$T/out")" \
        "after PQrequestCancel: next holders' queries cancelled, and backends handed on"
    assert_eq "stale rounds=50 cancelled=0 errors=0 same_backend=50" "$(grep '^stale ' "$T/out")" \
        "queries under a PGcancel kept from the previous checkout"
    assert_eq "own rounds=20 cancelled=20 errors=0 same_backend=0" "$(grep '^own ' "$T/out")" \
        "cancels of the holder's own query"
    # Each race round either closed the cancelled session or reused one
    # whose cancel was refused; the request rounds closed theirs.
    local closed same
    closed=$(grep -c 'event=close .*reason=cancel' "$T/shim.log")
    same=$(line_value "$T/out" '^race .*same_backend=([0-9]+)')
    echo "race rounds that closed the session: $closed (same backend: $same)"
    assert_ge 70 "$closed" "sessions closed after a cancel (request and own rounds at least)"
    assert_eq 200 "$(( same + closed - 50 - 20 ))" "race rounds: reused or closed"
    assert_eq "" "$(cat "$T/err")" "the program's stderr"
}

# libpq 17's PQcancelCreate gives a cancel connection that may cancel at
# any time later: a session it was made for is closed at checkin. Debian
# 12's libpq is older, so a copy of it gets the function from a small
# stand-in library added to its dependencies (where the shim looks, as in
# libpq 17). Without the stand-in there is nothing to create and the
# session is reused.
test_cancel_connection_closes_its_session() {
    command -v patchelf >/dev/null 2>&1 ||
        { skip_test "patchelf not installed (make deps installs it)"; return 0; }
    local libpq
    libpq=$(ldd "$TESTBIN/cancel_race" | awk '$1 == "libpq.so.5" {print $3}')
    mkdir -p "$T/lib"
    cp "$libpq" "$T/lib/libpq.so.5"
    cp "$TESTBIN/libcancelconn.so" "$T/lib/"
    patchelf --add-needed libcancelconn.so "$T/lib/libpq.so.5"
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_LOG=$T/shim.log LD_LIBRARY_PATH=$T/lib \
        shimmed timeout 60 "$TESTBIN/cancel_race" "" 20 create >"$T/out" 2>"$T/err" ||
        { cat "$T/out" "$T/err"; fail "cancel_race failed"; }
    cat "$T/out"
    assert_eq "create rounds=20 made=20 same_backend=0 errors=0" "$(cat "$T/out")" \
        "cancel connections made, and the backend handed on after one"
    assert_eq 20 "$(grep -c 'event=close .*reason=cancel' "$T/shim.log")" "sessions closed after a cancel connection"
    assert_eq 0 "$(grep -c 'libpq_symbol_missing' "$T/shim.log")" "warnings about missing libpq functions"
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_LOG=$T/plain.log \
        shimmed timeout 60 "$TESTBIN/cancel_race" "" 20 create >"$T/plain.out" 2>"$T/plain.err" ||
        { cat "$T/plain.out" "$T/plain.err"; fail "cancel_race failed"; }
    assert_eq "create rounds=20 made=0 same_backend=20 errors=0" "$(cat "$T/plain.out")" \
        "without PQcancelCreate in libpq"
    assert_eq 0 "$(grep -c 'libpq_symbol_missing' "$T/plain.log")" "warnings about missing libpq functions"
}

# ---- limits that hold for every target ------------------------------------------

long_conninfo() {
    printf "options='-c pqshim.pad=%s'" "$(head -c 1800 /dev/zero | tr '\0' 'x')"
}

test_long_target_key_holds_cap_and_host_limit() {
    local long
    long=$(long_conninfo)
    printf 'connect 1 %s\ntconnect 2 %s\nfinish 1\nconnect 3 %s\nfinish 3\n' \
        "$long" "$long" "$long" >"$T/cap.script"
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=0.5 PQSHIM_LOG=$T/cap.log \
        pool_script_run cap
    cut -c 1-200 "$T/cap.out"
    await_line "$T/cap.out" '^connect 1 ok'
    await_line "$T/cap.out" '^tconnect 2 bad .*pool limit of size 1 overflow 0'
    await_line "$T/cap.out" '^connect 3 ok'
    assert_eq 1 "$(count_events "$T/cap.log" connect)" "server connections"

    printf 'connect 1 %s\ntconnect 2 %s\nfinish 1\nfinish 2\n' "$long" "$long" >"$T/host.script"
    PQSHIM_POOL_SIZE=5 PQSHIM_HOST_LIMIT=1 PQSHIM_HOST_LIMIT_FILE=$T/hostlimit \
        PQSHIM_POOL_TIMEOUT=0.5 PQSHIM_LOG=$T/host.log pool_script_run host
    cut -c 1-200 "$T/host.out"
    await_line "$T/host.out" '^connect 1 ok'
    await_line "$T/host.out" '^tconnect 2 bad .*host limit of 1 connections reached'
}

# ---- threads, control, time bounds -------------------------------------------------

# pthread_cancel of a thread waiting at the cap, and of one in the middle
# of a connect: no lock stays held, no slot leaks (the client checks).
test_cancelled_threads_leave_nothing_held() {
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=2 PQSHIM_HOST_LIMIT=1 \
        PQSHIM_HOST_LIMIT_FILE=$T/hostlimit PQSHIM_LOG=$T/shim.log \
        shimmed "$TESTBIN/cancel_thread" "" >"$T/out" 2>"$T/err" &
    local pid=$!
    track_pid "$pid"
    wait_pid "$pid" 30 || { cat "$T/out" "$T/err"; fail "cancel_thread failed"; }
    cat "$T/out"
    assert_eq "done bad=0" "$(tail -n 1 "$T/out")" "verdict"
    assert_contains "$(cat "$T/out")" "connect again ok" "connect after the cancelled wait"
    assert_contains "$(cat "$T/out")" "second connect reached the server 1" \
        "connect after the cancelled connect"
}

# With the only connection allowed checked out, health neither opens one
# more past the cap or the host limit nor calls the target failing.
test_health_respects_cap_and_host_limit() {
    printf 'connect 1\necho held\nwait %s/go\nfinish 1\n' "$T" >"$T/held.script"
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_HOST_LIMIT=1 \
        PQSHIM_HOST_LIMIT_FILE=$T/hostlimit PQSHIM_CONTROL=$T/ctl.sock PQSHIM_LOG=none \
        pool_script_bg held
    await_line "$T/held.out" '^held'
    local mark reply
    mark=$(server_log_mark)
    reply=$("$CTL" -s "$T/ctl.sock" --json health) || fail "health failed: $reply"
    echo "$reply"
    touch "$T/go"
    wait_pid "$POOL_SCRIPT_PID" 20 || fail "client failed"
    assert_contains "$reply" '"ok":true,"via":"at_cap"' "health of a target at its cap"
    assert_eq 0 "$(server_log_since "$mark" | grep -c 'connection authorized' || true)" \
        "server connections opened by health"
}

# A failed query in pipeline mode, left without Sync: the server ignores
# everything until a Sync, so that connection is closed at once, and
# neither PQfinish nor the next connect waits for it.
test_pipeline_error_without_sync_is_closed() {
    printf '%s\n' 'connect 1' 'exec 1 begin' 'pipefail 1' 'finish 1' 'connect 2' 'exec 2 select 2' \
        'finish 2' 'connect 3' 'pipefail 3' 'finish 3' 'connect 4' 'exec 4 select 4' 'finish 4' \
        >"$T/pipe.script"
    PQSHIM_LOG=$T/shim.log pool_script_run pipe
    expect_transcript "$T/pipe.out" -e 's/ pid=[0-9]+//' <<'EOF'
connect 1 ok
exec 1 ok
pipefail 1 exited=1 error=22012
finish 1
connect 2 ok
exec 2 ok 2
finish 2
connect 3 ok
pipefail 3 exited=1 error=22012
finish 3
connect 4 ok
exec 4 ok 4
finish 4
EOF
    assert_eq 2 "$(grep -c 'event=close .*reason=unsafe_state' "$T/shim.log")" "closed, not pooled"
}

# A reset whose answer never comes (PgBouncer paused: the DISCARD ALL sent
# at checkin waits for a server) costs the next connect at most the 2 s
# bound; that connection is closed and a fresh one is handed out.
test_stuck_reset_is_bounded() {
    need_pgbouncer || return 0
    bouncer_start admin_users=pgbouncer
    local ci
    ci=$(bouncer_tcp)
    printf '%s\n' "connect 1 $ci" 'exec 1 select 1' 'echo ready' "wait $T/go" 'finish 1' \
        "connect 2 $ci" "wait $T/go2" 'exec 2 select 2' 'finish 2' >"$T/stuck.script"
    PQSHIM_LOG=$T/shim.log pool_script_bg stuck
    await_line "$T/stuck.out" '^ready'
    bouncer_admin "pause $BOUNCER_DB" >/dev/null || fail "pause failed"
    touch "$T/go"
    await_line "$T/stuck.out" '^connect 2 ' 15
    bouncer_admin "resume $BOUNCER_DB" >/dev/null || fail "resume failed"
    touch "$T/go2"
    wait_pid "$POOL_SCRIPT_PID" 20 || fail "client failed"
    cat "$T/stuck.out"
    local ms
    ms=$(line_value "$T/stuck.out" '^connect 2 ok pid=-?[0-9]+ ms=([0-9]+)')
    [ -n "$ms" ] || fail "connect 2 failed"
    assert_ge 1900 "$ms" "ms the second connect waited for the stuck reset"
    assert_le 6000 "$ms" "ms the second connect waited for the stuck reset"
    assert_contains "$(cat "$T/stuck.out")" "exec 2 ok 2" "query on the fresh connection"
    assert_eq 1 "$(grep -c 'event=close .*reason=reset_failed' "$T/shim.log")" "stuck connection closed"
}

# PQreset opens a new backend in the same PGconn: status counts every
# connect and close the log shows.
test_reset_is_counted() {
    printf 'connect 1\nreset 1\nreset 1\necho ready\nwait %s/go\nfinish 1\n' "$T" >"$T/reset.script"
    PQSHIM_CONTROL=$T/ctl.sock PQSHIM_LOG=$T/shim.log pool_script_bg reset
    await_line "$T/reset.out" '^ready'
    local status
    status=$("$CTL" -s "$T/ctl.sock" --json status)
    touch "$T/go"
    wait_pid "$POOL_SCRIPT_PID" 20 || fail "client failed"
    assert_eq 3 "$(count_events "$T/shim.log" connect)" "connect lines"
    assert_eq 2 "$(count_events "$T/shim.log" close)" "close lines before exit" || true
    assert_contains "$status" '"connects_total":3,' "connects_total"
    assert_contains "$status" '"closes_total":2,' "closes_total"
}

# A traced connection is closed rather than pooled: its trace ends with the
# session's Terminate, as a fresh connection's would.
test_traced_connection_is_closed() {
    printf '%s\n' 'connect 1' "trace 1 $T/trace.txt" "exec 1 select 'traced-query'" 'finish 1' \
        'connect 2' "exec 2 select 'untraced-query'" 'finish 2' >"$T/trace.script"
    PQSHIM_LOG=$T/shim.log pool_script_run trace
    assert_eq 1 "$(grep -c 'event=close .*reason=unsafe_state' "$T/shim.log")" "traced connection closed"
    assert_eq 2 "$(count_events "$T/shim.log" connect)" "server connections"
    assert_file_contains "$T/trace.txt" "traced-query" "the trace"
    assert_file_contains "$T/trace.txt" "Terminate" "the trace"
    if grep -q "untraced-query" "$T/trace.txt"; then
        fail "the second user's query went to the first user's trace file"
    fi
}
