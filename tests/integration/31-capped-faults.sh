# The capped pool when things go wrong or change under it: connections
# that cannot be reset, backends that died while idle, age and idle limits,
# fork and exit.

. "$ROOT/tests/lib/capped.bash"

export PQSHIM_POLICY=capped

# A connection finished with a query in flight, in pipeline mode, or with an
# event proc registered is closed, never handed to the next user.
test_unresettable_connections_are_closed() {
    cat >"$T/unsafe.script" <<'EOF'
connect 1
send 1 select pg_sleep(0.05)
finish 1
connect 2
pipeline 2
finish 2
connect 3
event 3
finish 3
connect 4
exec 4 select 4
finish 4
EOF
    PQSHIM_LOG="$T/shim.log" pool_script_run unsafe
    local p1 p2 p3 p4
    p1=$(line_value "$T/unsafe.out" '^connect 1 ok pid=([0-9]+)')
    p2=$(line_value "$T/unsafe.out" '^connect 2 ok pid=([0-9]+)')
    p3=$(line_value "$T/unsafe.out" '^connect 3 ok pid=([0-9]+)')
    p4=$(line_value "$T/unsafe.out" '^connect 4 ok pid=([0-9]+)')
    expect_transcript "$T/unsafe.out" -e "s/\\b$p1\\b/P1/g" -e "s/\\b$p2\\b/P2/g" \
        -e "s/\\b$p3\\b/P3/g" -e "s/\\b$p4\\b/P4/g" <<'EOF'
connect 1 ok pid=P1
send 1 ok
finish 1
connect 2 ok pid=P2
pipeline 2 ok
finish 2
connect 3 ok pid=P3
event 3 registered
event 3 destroy
finish 3
connect 4 ok pid=P4
exec 4 ok 4
finish 4
EOF
    assert_eq 4 "$(printf '%s\n' "$p1" "$p2" "$p3" "$p4" | sort -u | wc -l)" "distinct backends"
    assert_eq 3 "$(grep -c 'event=close .*reason=unsafe_state' "$T/shim.log")" "unsafe_state closes"
    assert_eq 4 "$(count_events "$T/shim.log" connect)" "real connects"
    wait_until 5 output_is 0 sql "select count(*) from pg_stat_activity where pid in ($p1, $p2, $p3)" ||
        fail "the closed backends are still on the server"
}

# The script for the liveness tests: a long-lived client that connects,
# finishes (the connection goes idle in the pool) and then waits for the
# test to break the idle connection before it connects again.
liveness_script() {  # ROUNDS [CONNINFO]
    local i
    for i in $(seq 0 "$1"); do
        printf 'connect %d %s\nexec %d select pg_backend_pid()\nfinish %d\n' "$i" "${2:-}" "$i" "$i"
        [ "$i" = "$1" ] || printf 'echo ready %d\nwait %s/go%d\n' "$i" "$T" "$i"
    done
}

backend_gone() {  # PID
    [ "$(sql "select count(*) from pg_stat_activity where pid = $1")" = 0 ]
}

# Check the transcript of a liveness run: every round got a new, working
# backend without an error, and the shim closed each dead one as dead.
check_liveness_run() {  # NAME ROUNDS
    local out="$T/$1.out" i pid
    cat "$out"
    if grep -E ' bad | error ' "$out"; then
        fail "the program saw an error"
    fi
    for i in $(seq 0 "$2"); do
        pid=$(line_value "$out" "^connect $i ok pid=([0-9]+)")
        [ -n "$pid" ] || fail "connect $i failed"
        assert_contains "$(cat "$out")" "exec $i ok $pid" "round $i's query"
    done
    assert_eq "$(($2 + 1))" "$(cut -d' ' -f4 "$out" | grep -c '^pid=')" "connects"
    assert_eq "$(($2 + 1))" "$(grep '^connect' "$out" | cut -d' ' -f4 | sort -u | wc -l)" \
        "distinct backends"
    assert_eq "$2" "$(grep -c 'event=close .*reason=dead' "$T/$1.log")" "close reason=dead"
    assert_eq "$(($2 + 1))" "$(count_events "$T/$1.log" connect)" "real connects"
}

# pg_terminate_backend of the idle pooled connection between two connects:
# the program sees no error and gets a fresh backend.
test_liveness_after_terminate() {
    liveness_after_terminate ""
}

test_liveness_after_terminate_tcp() {
    liveness_after_terminate "host=127.0.0.1"
}

liveness_after_terminate() {  # CONNINFO
    liveness_script 1 "$1" >"$T/term.script"
    PQSHIM_LOG="$T/term.log" pool_script_bg term
    await_line "$T/term.out" '^ready 0'
    local pid
    pid=$(line_value "$T/term.out" '^connect 0 ok pid=([0-9]+)')
    assert_eq t "$(sql "select pg_terminate_backend($pid)")" "terminate"
    wait_until 5 backend_gone "$pid" || fail "backend $pid still there"
    touch "$T/go0"
    wait_pid "$POOL_SCRIPT_PID" 20 || fail "client failed: $(cat "$T/term.err")"
    check_liveness_run term 1
}

# The same with PQSHIM_PRE_PING=always: a real round trip finds the dead one.
test_liveness_pre_ping_always() {
    liveness_script 2 >"$T/always.script"
    PQSHIM_PRE_PING=always PQSHIM_LOG="$T/always.log" pool_script_bg always
    await_line "$T/always.out" '^ready 0'
    # Round 1 finds a live connection: the ping succeeds and it is reused.
    touch "$T/go0"
    await_line "$T/always.out" '^ready 1'
    local pid0 pid1
    pid0=$(line_value "$T/always.out" '^connect 0 ok pid=([0-9]+)')
    pid1=$(line_value "$T/always.out" '^connect 1 ok pid=([0-9]+)')
    assert_eq "$pid0" "$pid1" "a live idle connection is reused"
    assert_eq t "$(sql "select pg_terminate_backend($pid1)")" "terminate"
    wait_until 5 backend_gone "$pid1" || fail "backend $pid1 still there"
    touch "$T/go1"
    wait_pid "$POOL_SCRIPT_PID" 20 || fail "client failed: $(cat "$T/always.err")"
    cat "$T/always.out"
    if grep -E ' bad | error ' "$T/always.out"; then
        fail "the program saw an error"
    fi
    local pid2
    pid2=$(line_value "$T/always.out" '^connect 2 ok pid=([0-9]+)')
    [ -n "$pid2" ] && [ "$pid2" != "$pid1" ] || fail "round 2 did not get a new backend"
    assert_contains "$(cat "$T/always.out")" "exec 2 ok $pid2" "round 2's query"
    assert_eq 1 "$(grep -c 'event=close .*reason=dead' "$T/always.log")" "close reason=dead"
    assert_eq 2 "$(count_events "$T/always.log" connect)" "real connects"
}

# A server restart (fast, then immediate) while the connection is idle.
test_liveness_after_restart() {
    liveness_script 2 >"$T/restart.script"
    PQSHIM_LOG="$T/restart.log" pool_script_bg restart
    await_line "$T/restart.out" '^ready 0'
    cluster_restart fast || fail "fast restart failed"
    touch "$T/go0"
    await_line "$T/restart.out" '^ready 1'
    cluster_restart immediate || fail "immediate restart failed"
    touch "$T/go1"
    wait_pid "$POOL_SCRIPT_PID" 20 || fail "client failed: $(cat "$T/restart.err")"
    check_liveness_run restart 2
}

# PQSHIM_POOL_RECYCLE=1: a connection older than that is not handed out
# again, whether it aged while idle or while the program held it.
test_recycle() {
    cat >"$T/recycle.script" <<'EOF'
connect 1
finish 1
sleep 1200
connect 2
sleep 1200
finish 2
connect 3
finish 3
EOF
    PQSHIM_POOL_RECYCLE=1 PQSHIM_LOG="$T/shim.log" pool_script_run recycle
    cat "$T/recycle.out"
    local p1 p2 p3
    p1=$(line_value "$T/recycle.out" '^connect 1 ok pid=([0-9]+)')
    p2=$(line_value "$T/recycle.out" '^connect 2 ok pid=([0-9]+)')
    p3=$(line_value "$T/recycle.out" '^connect 3 ok pid=([0-9]+)')
    [ -n "$p1" ] && [ -n "$p2" ] && [ -n "$p3" ] || fail "a connect failed"
    assert_eq 3 "$(printf '%s\n' "$p1" "$p2" "$p3" | sort -u | wc -l)" "distinct backends"
    assert_eq 2 "$(grep -c 'event=close .*reason=recycle' "$T/shim.log")" "close reason=recycle"
    assert_eq 3 "$(count_events "$T/shim.log" connect)" "real connects"
    wait_until 5 backend_gone "$p1" || fail "backend $p1 still there"
    wait_until 5 backend_gone "$p2" || fail "backend $p2 still there"
}

# A quiet process: idle connections past PQSHIM_IDLE_TIMEOUT (or past
# PQSHIM_POOL_RECYCLE) are closed by the pool on its own, and leave the
# server.
quiet_process_closes() {  # NAME REASON VARIABLE=VALUE...
    local name=$1 reason=$2
    shift 2
    printf 'connect %d\n' 1 2 3 >"$T/$name.script"
    printf 'finish %d\n' 1 2 3 >>"$T/$name.script"
    printf 'echo idle\nwait %s/%s.go\n' "$T" "$name" >>"$T/$name.script"
    export "$@"
    PQSHIM_LOG="$T/$name.log" pool_script_bg "$name"
    local pid=$POOL_SCRIPT_PID
    await_line "$T/$name.out" '^idle'
    local backends
    backends=$(sed -nE 's/^connect [0-9]+ ok pid=([0-9]+).*/\1/p' "$T/$name.out" | paste -sd,)
    assert_eq 3 "$(echo "$backends" | tr ',' '\n' | wc -l)" "connections opened"
    wait_until 10 output_is 3 grep -c "event=close .*reason=$reason" "$T/$name.log" ||
        fail "idle connections not closed: $(cat "$T/$name.log")"
    wait_until 5 output_is 0 sql "select count(*) from pg_stat_activity where pid in ($backends)" ||
        fail "the closed backends are still on the server"
    touch "$T/$name.go"
    wait_pid "$pid" 10 || fail "client failed: $(cat "$T/$name.err")"
    assert_eq 0 "$(grep -c 'reason=exit' "$T/$name.log")" "connections left for exit"
}

test_idle_timeout_closes_quiet_connections() {
    quiet_process_closes idle idle_timeout PQSHIM_IDLE_TIMEOUT=1
}

test_recycle_closes_quiet_connections() {
    quiet_process_closes aged recycle PQSHIM_POOL_RECYCLE=1
}

# fork: the child gets its own connections, the parent's idle connection
# survives the child (same backend, working), and the server sees no
# connection torn down under it.
test_fork_keeps_parent_connection() {
    # A session that ends without a goodbye is logged at DEBUG1 only.
    export PGOPTIONS="-c log_min_messages=debug1"
    # The parent has the pool's janitor thread; the child's pool starts its
    # own, which ThreadSanitizer refuses by default after a fork.
    [ -z "${TSAN_OPTIONS:-}" ] || export TSAN_OPTIONS="$TSAN_OPTIONS:die_after_fork=0"
    local mark
    mark=$(server_log_mark)
    cat >"$T/fork.script" <<'EOF'
connect 1
exec 1 select pg_backend_pid()
finish 1
fork
connect 2
exec 2 select pg_backend_pid()
finish 2
EOF
    PQSHIM_LOG="$T/shim.log" pool_script_run fork
    cat "$T/fork.out"
    local parent p1 p2 child cb
    parent=$POOL_SCRIPT_PID
    p1=$(line_value "$T/fork.out" '^connect 1 ok pid=([0-9]+)')
    p2=$(line_value "$T/fork.out" '^connect 2 ok pid=([0-9]+)')
    child=$(line_value "$T/fork.out" '^fork child_pid=([0-9]+)')
    cb=$(line_value "$T/fork.out" '^child [0-9]+ connect ok pid=([0-9]+)')
    [ -n "$p1" ] && [ -n "$child" ] && [ -n "$cb" ] || fail "a step failed"
    assert_eq "$p1" "$p2" "the parent's backend after the fork"
    assert_contains "$(cat "$T/fork.out")" "exec 2 ok $p1" "the parent's query after the fork"
    assert_contains "$(cat "$T/fork.out")" "child $child connect ok pid=$cb query=$cb" "the child's query"
    assert_contains "$(cat "$T/fork.out")" "child_status=0" "the child's exit status"
    [ "$cb" != "$p1" ] || fail "the child was handed the parent's backend"
    assert_file_contains "$T/shim.log" "pqshim[$child]: info event=connect" "the child's own connect"
    assert_file_contains "$T/shim.log" "pqshim[$child]: info event=close" "the child's close"
    assert_eq 1 "$(grep -c "pqshim[[]$parent[]]: info event=connect" "$T/shim.log")" "the parent's connects"
    # Both sessions ended with a proper goodbye.
    wait_until 5 grep -q "\\[$p1\\] LOG:  disconnection" "$CLUSTER_LOG" ||
        fail "no disconnection of $p1 in the server log"
    wait_until 5 grep -q "\\[$cb\\] LOG:  disconnection" "$CLUSTER_LOG" ||
        fail "no disconnection of $cb in the server log"
    local log
    log=$(server_log_since "$mark")
    assert_not_contains "$log" "unexpected EOF" "server log"
    assert_not_contains "$log" "could not receive data" "server log"
}

# At exit, idle pooled connections are closed politely: the server logs a
# disconnection for each, and no unexpected EOF (which a process that just
# exits would cause).
test_exit_closes_idle_connections() {
    export PGOPTIONS="-c log_min_messages=debug1"
    local mark
    mark=$(server_log_mark)
    # Three over the Unix socket, three over TCP.
    printf 'connect %d\n' 1 2 3 >"$T/exit.script"
    printf 'connect %d host=127.0.0.1\n' 4 5 6 >>"$T/exit.script"
    printf 'finish %d\n' 1 2 3 4 5 6 >>"$T/exit.script"
    PQSHIM_LOG="$T/shim.log" pool_script_run exit
    local backends pid
    backends=$(sed -nE 's/^connect [0-9]+ ok pid=([0-9]+).*/\1/p' "$T/exit.out")
    assert_eq 6 "$(echo "$backends" | wc -l)" "connections opened"
    assert_eq 6 "$(grep -c 'event=close .*reason=exit' "$T/shim.log")" "close reason=exit"
    for pid in $backends; do
        wait_until 5 grep -q "\\[$pid\\] LOG:  disconnection" "$CLUSTER_LOG" ||
            fail "no disconnection of $pid in the server log"
    done
    local log
    log=$(server_log_since "$mark")
    assert_not_contains "$log" "unexpected EOF" "server log"
    assert_not_contains "$log" "could not receive data" "server log"
}

# fork_storm_run NAME ARGS...: fork_storm with ARGS, logging at debug level into a
# file that cannot be opened (so every line takes the log's open lock and
# goes to stderr); its summary line in $T/NAME.out, checked: every child
# connected, queried and exited within 10 s, and there were at least 10.
fork_storm_run() {
    local name=$1 rc=0 out
    shift
    PQSHIM_LOG_LEVEL=debug PQSHIM_LOG="$T/missing/shim.log" \
        shimmed timeout -k 5 150 "$TESTBIN/fork_storm" "$@" >"$T/$name.out" 2>"$T/$name.err" || rc=$?
    out=$(cat "$T/$name.out")
    echo "$name: $out"
    [ "$rc" = 0 ] || fail "$name: fork_storm exited with $rc: $out $(tail -c 2000 "$T/$name.err")"
    assert_contains "$out" " hung=0 " "$name: children deadlocked"
    assert_contains "$out" " failed=0 " "$name: children that failed"
    assert_ge 10 "$(line_value "$T/$name.out" '^forks=([0-9]+)')" "$name: children forked"
    assert_ge 100 "$(line_value "$T/$name.out" '^.* connects=([0-9]+)')" "$name: connect cycles of the parent's threads"
    assert_ge 1 "$(count_events "$T/$name.err" log_file_unavailable)" "$name: lines on stderr"
}

# Fork storms: one thread forks again and again while others are inside
# the shim. First four threads connect, check in and log while another
# loads and unloads a plugin linked to libpq (the rewrite lock; the
# dynamic loader's own lock, which a child inherits taken when the fork
# came during a dlopen or dlclose); then eight threads connect, check in
# and log (the shim's own locks: pools, registry, the log's open lock; the
# control socket's start in each child).
# Each child connects, queries, finishes and exits within 10 s: none
# inherits a lock that a thread it lacks held at the fork, and none waits
# for the loader's.
test_fork_storm_children_never_deadlock() {
    # AddressSanitizer's allocator (GCC 12's runtime) takes no lock around
    # fork(): a child forked while another thread allocates can wait for
    # that allocator's lock forever, shim or not (gdb shows the child in
    # SizeClassAllocator64::GetFromAllocator). The plain build runs it.
    if [ "${TEST_SANITIZER:-}" = asan ]; then
        skip_test "AddressSanitizer's allocator is not fork-safe with allocating threads"
        return 0
    fi
    export PQSHIM_CONTROL="$T/ctl-%p.sock"
    # ThreadSanitizer loses track of a child that starts threads (the
    # control socket's, the pool's janitor) after a fork of a process with
    # many ("dup thread with used id"): there, children start none.
    if [ "${TEST_SANITIZER:-}" = tsan ]; then
        unset PQSHIM_CONTROL
        export PQSHIM_POLICY=null
    fi
    fork_storm_run loader -s 8 -c 4 -m "$TESTBIN/libpqmod.so" || return 1
    assert_ge 10 "$(line_value "$T/loader.out" '^.* loads=([0-9]+)')" "plugin loads"
    fork_storm_run locks -s 10 -c 8
}
