# The host-wide limit (PQSHIM_HOST_LIMIT): many processes, one cap per
# target on the server; slots come back when their holder dies, waiting is
# in arrival order and ends in a clear error, forked children hold nothing
# of their parent's, and the numbers show in status and pqshimctl ls.

. "$ROOT/tests/lib/capped.bash"
. "$ROOT/tests/lib/reliability.bash"

# Every process of a test shares the test's own limit file.
export PQSHIM_HOST_LIMIT_FILE="$T/host.limit"

# storm N_PROCS THREADS ITER POLICY: N_PROCS shimmed pool_threads processes
# at once, each tagged application_name=hl; waits for all of them.
storm() {
    local i pids=()
    for i in $(seq 1 "$1"); do
        PGAPPNAME=hl PQSHIM_POLICY=$4 PQSHIM_LOG="$T/shim.$i.log" \
            shimmed timeout 120 "$TESTBIN/pool_threads" -t "$2" -n "$3" \
            -q "select pg_sleep(0.005)" >"$T/out.$i" 2>"$T/err.$i" &
        pids+=($!)
        track_pid $!
    done
    local rc=0
    for i in "${pids[@]}"; do wait_pid "$i" 120 || rc=1; done
    return $rc
}

storm_asserts() {  # N_PROCS THREADS ITER LIMIT
    local i
    for i in $(seq 1 "$1"); do
        assert_contains "$(cat "$T/out.$i")" "ok=$(( $2 * $3 )) errors=0" "process $i: all iterations succeed"
        assert_eq "" "$(cat "$T/err.$i")" "process $i: errors reported"
    done
    cat "$T"/shim.*.log >"$T/shim.log"
    assert_le "$4" "$(sampler_peak hl)" "peak server connections across processes"
    assert_ge 1 "$(sampler_peak hl)" "peak server connections (the sampler saw the run)"
    assert_ge 1 "$(count_events "$T/shim.log" host_wait)" "host_wait lines"
    assert_eq 0 "$(count_events "$T/shim.log" host_timeout)" "host timeouts"
    assert_eq 0 "$(count_events "$T/shim.log" connect_failed)" "failed connects"
}

# 8 processes x 8 threads under the null policy (every connect a new
# server connection), limit 5: never more than 5 on the server, no errors.
test_storm_null_policy_held_at_limit() {
    sampler_start application_name
    PQSHIM_HOST_LIMIT=5 PQSHIM_POOL_TIMEOUT=60 storm 8 8 3 null || fail "a storm process failed"
    sampler_stop
    storm_asserts 8 8 3 5
}

# The same with capped pools (each process could open 15): the host limit
# still holds, idle connections give their slots up to waiting processes.
test_storm_capped_policy_held_at_limit() {
    sampler_start application_name
    PQSHIM_HOST_LIMIT=5 PQSHIM_POOL_TIMEOUT=60 storm 8 8 3 capped || fail "a storm process failed"
    sampler_stop
    storm_asserts 8 8 3 5
    assert_ge 1 "$(grep -c 'reason=host_demand' "$T/shim.log")" "connections closed for other processes"
}

# hold NAME: a pool_script process that connects once and holds the
# connection until $T/NAME.go exists; waits until it is connected.
hold() {
    printf 'connect 1\necho held\nwait %s\nfinish 1\n' "$T/$1.go" >"$T/$1.script"
    PQSHIM_LOG="$T/$1.log" pool_script_bg "$1"
    eval "${1}_PID=$POOL_SCRIPT_PID"
    await_line "$T/$1.out" '^held' 30
}

# queue NAME [SCRIPT]: a pool_script process (default script: connect 1,
# finish 1) that is queued for a slot; $WAITER_PID is its pid.
queue() {
    printf '%b' "${2:-connect 1\nfinish 1\n}" >"$T/$1.script"
    PQSHIM_LOG="$T/$1.log" pool_script_bg "$1"
    WAITER_PID=$POOL_SCRIPT_PID
    await_line "$T/$1.log" 'event=host_wait' 10
}

# connect_ms NAME N: psql -c 'select N' through the shim must print N; the
# milliseconds it took.
connect_ms() {
    local t0
    t0=$(date +%s%N)
    # Called as $(...), where errexit is off: return explicitly.
    PQSHIM_LOG="$T/$1.log" shimmed "$PSQL" -X -At -c "select $2" >"$T/$1.out" 2>&1 ||
        { fail "psql failed: $(cat "$T/$1.out")"; return 1; }
    [ "$(cat "$T/$1.out")" = "$2" ] || { fail "psql output: $(cat "$T/$1.out")"; return 1; }
    echo $(( ($(date +%s%N) - t0) / 1000000 ))
}

# A holder killed with SIGKILL gives its slot back at once: a process
# waiting for it connects within the waiters' 200 ms check plus its own
# connect, far from the 20 s it would wait if the death went unnoticed (the
# bound leaves a busy machine room for the kernel's teardown of the holder).
test_sigkill_frees_slot() {
    export PQSHIM_HOST_LIMIT=1 PQSHIM_POOL_TIMEOUT=20
    hold a
    grep -q '^connect 1 ok' "$T/a.out" || fail "holder did not connect: $(cat "$T/a.out")"
    queue b 'connect 1\nexec 1 select 1\nfinish 1\n'
    local waiter=$WAITER_PID
    sleep 0.3 # it must still be waiting: nothing has been freed
    grep -q '^connect' "$T/b.out" && fail "the waiter got past the limit: $(cat "$T/b.out")"
    local killed_at
    killed_at=$(date +%s%N)
    kill -9 "$a_PID"
    await_line "$T/b.out" '^connect 1 ok' 5
    local ms=$(( ($(date +%s%N) - killed_at) / 1000000 ))
    echo "waiter connected ${ms} ms after the SIGKILL"
    assert_le 3000 "$ms" "ms from SIGKILL to the waiter's connect"
    wait_pid "$waiter" 10
    assert_contains "$(cat "$T/b.out")" "exec 1 ok 1" "the waiter's query"
}

# A waiter killed while queued does not hold up the queue: once the slot is
# free, the next process connects at once. "At once" is the shim's own
# account, not the time psql takes on a busy machine: the next process
# finds the dead entry gone and never queues (no host_wait line), where a
# dead entry ahead used to cost it four polls of 200 ms.
test_sigkill_of_waiter_does_not_block_queue() {
    export PQSHIM_HOST_LIMIT=1 PQSHIM_POOL_TIMEOUT=20
    hold a
    queue b
    kill -9 "$WAITER_PID"
    wait "$WAITER_PID" 2>/dev/null || true
    touch "$T/a.go"
    wait_pid "$a_PID" 10
    local ms
    ms=$(connect_ms c 3)
    echo "connected in ${ms} ms past the dead waiter's entry"
    cat "$T/c.log"
    assert_eq 0 "$(count_events "$T/c.log" host_wait)" "times the next process queued for a slot"
}

# Nor does a dead waiter's entry make a pool give up its connections: the
# holder's checkin finds nobody alive waiting and keeps the connection.
test_dead_waiter_does_not_cost_reuse() {
    export PQSHIM_HOST_LIMIT=1 PQSHIM_POOL_TIMEOUT=20
    printf 'connect 1\necho held\nwait %s\nfinish 1\nconnect 2\ncheck 2\nfinish 2\n' \
        "$T/a.go" >"$T/a.script"
    PQSHIM_POLICY=capped PQSHIM_LOG_LEVEL=debug PQSHIM_LOG="$T/a.log" pool_script_bg a
    local holder=$POOL_SCRIPT_PID
    await_line "$T/a.out" '^held' 10
    queue b
    kill -9 "$WAITER_PID"
    wait "$WAITER_PID" 2>/dev/null || true
    touch "$T/a.go"
    wait_pid "$holder" 10
    cat "$T/a.out"
    assert_eq 0 "$(grep -c 'reason=host_demand' "$T/a.log")" "connections closed for a dead waiter"
    assert_eq 1 "$(grep -c 'event=checkout .*reused=1' "$T/a.log")" "the second connect reused the first"
    assert_eq 1 "$(count_events "$T/a.log" connect)" "server connections opened"
}

# Waiting ends after PQSHIM_POOL_TIMEOUT with an error naming the limit.
test_timeout_error_names_host_limit() {
    export PQSHIM_HOST_LIMIT=1
    hold a
    local out rc=0 t0 t1
    t0=$(date +%s%N)
    out=$(PQSHIM_POOL_TIMEOUT=0.5 PQSHIM_LOG="$T/b.log" shimmed "$PSQL" -X -c 'select 1' 2>&1) || rc=$?
    t1=$(date +%s%N)
    touch "$T/a.go"
    echo "$out"
    assert_eq 2 "$rc" "psql exit status"
    assert_contains "$out" "pqshim: host limit of 1 connections reached for postgres@" "error text"
    assert_contains "$out" "(PQSHIM_HOST_LIMIT, shared through $T/host.limit), connection timed out, timeout 0.50s (PQSHIM_POOL_TIMEOUT)" "error text"
    assert_file_contains "$T/b.log" "event=host_timeout" "host_timeout line"
    assert_file_contains "$T/b.log" "limit=1" "host_timeout names the limit"
    local ms=$(( (t1 - t0) / 1000000 ))
    assert_ge 450 "$ms" "ms before the error"
    assert_le 3000 "$ms" "ms before the error"
}

# Three processes queue behind a holder; they get the slot in the order
# they arrived.
test_waiters_served_in_arrival_order() {
    export PQSHIM_HOST_LIMIT=1 PQSHIM_POOL_TIMEOUT=30 PQSHIM_LOG_FORMAT=json
    hold a
    local i
    for i in 1 2 3; do
        printf 'connect 1\nexec 1 select pg_sleep(0.2)\nfinish 1\n' >"$T/w$i.script"
        PQSHIM_LOG="$T/w$i.log" pool_script_bg "w$i"
        eval "w${i}_PID=$POOL_SCRIPT_PID"
        await_line "$T/w$i.log" '"event":"host_wait"' 10
    done
    touch "$T/a.go"
    for i in 1 2 3; do wait_pid "$(eval echo \$w${i}_PID)" 30 || fail "waiter $i failed"; done
    local order
    order=$(for i in 1 2 3; do
        "$PYTHON" -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d["event"] == "connect":
        print(d["ts"], sys.argv[2])
' "$T/w$i.log" "$i"
    done | sort -n | awk '{printf "%s", $2}')
    assert_eq 123 "$order" "order in which the waiters connected"
}

# An idle pooled connection in one process gives its slot to another
# process that needs one: the watcher closes it (reason=host_demand).
test_idle_connection_released_for_other_process() {
    export PQSHIM_HOST_LIMIT=1 PQSHIM_POOL_TIMEOUT=20
    printf 'connect 1\nexec 1 select 1\nfinish 1\necho idle\nwait %s\n' "$T/a.go" >"$T/a.script"
    PQSHIM_POLICY=capped PQSHIM_LOG="$T/a.log" pool_script_bg a
    on_exit "touch $T/a.go"
    await_line "$T/a.out" '^idle' 10
    assert_eq 1 "$(server_connections)" "server connections (one idle in the pool)"
    local ms
    ms=$(connect_ms b 42)
    assert_le 2000 "$ms" "ms for the second process to connect"
    await_line "$T/a.log" 'reason=host_demand' 5
}

# Slots belong to connections, and record locks are not inherited: a child
# forked while its parent holds the only slot must wait like anyone else,
# and once the parent closes its connection the slot is free even though
# the child still lives.
test_fork_child_holds_no_parent_slot() {
    export PQSHIM_HOST_LIMIT=1 PQSHIM_POOL_TIMEOUT=1
    PQSHIM_LOG="$T/shim.log" shimmed "$PYTHON" "$HELPERS/hostlimit_fork.py" "$T" "$PSQL" >"$T/out" 2>&1 || fail "script failed: $(cat "$T/out")"
    cat "$T/out"
    assert_contains "$(cat "$T/out")" "child refused: pqshim: host limit of 1 connections" "child waits for its parent's slot"
    assert_contains "$(cat "$T/out")" "after close: 0 7" "slot free after the parent closes, child alive"
}

# status and pqshimctl ls show the limit and the slots held host-wide.
test_status_and_ls_show_host_numbers() {
    export PQSHIM_HOST_LIMIT=3 PQSHIM_CONTROL="$T/ctl.%p"
    hold a
    hold b
    local sock="$T/ctl.$a_PID"
    wait_until 5 test -S "$sock" || fail "no control socket"
    ctl "$sock" status >"$T/status.json"
    "$PYTHON" - "$T/status.json" "$T/host.limit" <<'EOF' || fail "status: $(cat "$T/status.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["host_limit"] == {"limit": 3, "file": sys.argv[2]}, d["host_limit"]
assert d["settings"]["PQSHIM_HOST_LIMIT"] == "3", d["settings"]
h = d["pools"][0]["host"]
assert h == {"limit": 3, "held": 2, "held_here": 1, "waiting": 0, "longest_wait_s": 0,
             "handoffs_total": 0, "yields_total": 0}, h
EOF
    "$BUILD/pqshimctl" ls -D "$T" >"$T/ls.out"
    cat "$T/ls.out"
    assert_eq 2 "$(grep -c 'host=2/3 host_waiting=0' "$T/ls.out")" "ls rows with the host-wide totals"
    "$BUILD/pqshimctl" -s "$sock" status >"$T/status.txt"
    cat "$T/status.txt"
    assert_file_contains "$T/status.txt" "host limit 3 per target, shared through $T/host.limit" "status header"
    assert_file_contains "$T/status.txt" "2/3" "status host column"
    ctl "$sock" metrics >"$T/metrics"
    assert_file_contains "$T/metrics" 'pqshim_host_slots_held{' "metrics"
    touch "$T/a.go" "$T/b.go"
}

# Bad values are reported once and change nothing; an unusable file says
# so and the program connects without the limit.
test_bad_host_limit_settings() {
    local out
    out=$(PQSHIM_HOST_LIMIT=lots shimmed "$PSQL" -X -At -c 'select 1' 2>&1)
    assert_contains "$out" "event=config_invalid variable=PQSHIM_HOST_LIMIT value=lots" "bad limit"
    assert_contains "$out" "accepted=\"an integer from 1 to 1000, or 0 for no limit\"" "accepted values"
    out=$(PQSHIM_HOST_LIMIT=1 PQSHIM_HOST_LIMIT_FILE=relative shimmed "$PSQL" -X -At -c 'select 1' 2>&1)
    assert_contains "$out" "event=config_invalid variable=PQSHIM_HOST_LIMIT_FILE value=relative" "bad file"
    ln -s /etc/passwd "$T/link"
    out=$(PQSHIM_HOST_LIMIT=1 PQSHIM_HOST_LIMIT_FILE="$T/link" shimmed "$PSQL" -X -At -c 'select 1' 2>&1)
    assert_contains "$out" "error event=host_limit_unavailable file=$T/link" "symlink refused"
    assert_contains "$out" 'effect="PQSHIM_HOST_LIMIT is not applied"' "the effect is said"
    assert_contains "$out" $'\n1' "the program still works"
    printf 'not ours\n' >"$T/other"
    chmod 600 "$T/other"
    cp "$T/other" "$T/other.orig"
    out=$(PQSHIM_HOST_LIMIT=1 PQSHIM_HOST_LIMIT_FILE="$T/other" shimmed "$PSQL" -X -At -c 'select 1' 2>&1)
    assert_contains "$out" 'error="not a pqshim host limit file"' "foreign file refused"
    cmp -s "$T/other" "$T/other.orig" || fail "the foreign file was changed"
}

# A program that closes every descriptor (as daemonizing code does) takes
# the shim's with it: the next connect says so once and goes ahead
# without the limit, instead of waiting for a slot it can never lock; the
# log file is opened again (its old number may be the program's now).
test_closed_descriptor_turns_limit_off() {
    PQSHIM_HOST_LIMIT=1 PQSHIM_POOL_TIMEOUT=10 PQSHIM_LOG="$T/shim.log" \
        shimmed "$PYTHON" "$HELPERS/hostlimit_closed_fds.py" >"$T/out" 2>&1 || fail "script failed: $(cat "$T/out")"
    cat "$T/out" "$T/shim.log"
    assert_eq 5 "$(cut -d' ' -f1 "$T/out")" "query after closing every descriptor"
    assert_le 2000 "$(cut -d' ' -f2 "$T/out")" "ms for that connect"
    assert_eq 1 "$(count_events "$T/shim.log" host_limit_unavailable)" "host_limit_unavailable lines"
}

# A waiter that is stopped (SIGSTOP, a debugger, a frozen cgroup) is passed
# over once its heartbeat is stale: the next process still gets the slot.
test_stopped_waiter_passed_over() {
    export PQSHIM_HOST_LIMIT=1 PQSHIM_POOL_TIMEOUT=20
    hold a
    queue b
    local waiter=$WAITER_PID
    kill -STOP "$waiter"
    on_exit "kill -CONT $waiter"
    touch "$T/a.go"
    wait_pid "$a_PID" 10
    local ms
    ms=$(connect_ms c 4)
    echo "connected in ${ms} ms past the stopped waiter"
    assert_le 4000 "$ms" "ms for the next process to connect"
    kill -CONT "$waiter"
    wait_pid "$waiter" 20 || fail "the resumed waiter failed"
    assert_contains "$(cat "$T/b.out")" "connect 1 ok" "the resumed waiter connects"
}


# pgbench_storm NAME [shimmed]: 6 pgbench -C processes x 4 clients for 4 s
# at once as role hlbench (the server admits 9 of its connections), each
# transaction holding its connection 0.1 s; outputs in $T/NAME.N.out.
# Fails on a hang or a crash only.
pgbench_storm() {
    local i pids=() run=()
    [ $# -lt 2 ] || run=(shimmed)
    for i in 1 2 3 4 5 6; do
        PGUSER=hlbench PGDATABASE=hlbench PGAPPNAME=hl PQSHIM_POLICY=capped \
            PQSHIM_POOL_SIZE=2 PQSHIM_MAX_OVERFLOW=2 PQSHIM_LOG_LEVEL=debug \
            PQSHIM_LOG="$T/$1.$i.log" "${run[@]}" timeout 60 "$PGBENCH" -n -C \
            -f "$T/txn.sql" -c 4 -j 4 -T 4 >"$T/$1.$i.out" 2>&1 &
        pids+=($!)
        track_pid $!
    done
    # pgbench exits 2 when clients were aborted (counted by the caller).
    local rc=0 r
    for i in "${pids[@]}"; do
        r=0
        wait_pid "$i" 60 || r=$?
        [ "$r" -le 2 ] || rc=1
    done
    return $rc
}

# handed_on_in_status: a storm process's status shows hand-offs kept in
# the process (saved in $T/status.json).
handed_on_in_status() {
    local sock
    for sock in "$T"/ctl.*; do
        [ -S "$sock" ] || continue
        ctl "$sock" status >"$T/status.json" 2>/dev/null || continue
        grep -q '"handoffs_total":[1-9]' "$T/status.json" && return 0
    done
    return 1
}

pgbench_sum() {  # NAME FIELD-REGEX: the sum of a number over the 6 outputs
    cat "$T/$1".[1-6].out | sed -nE "s/^$2[^0-9]*([0-9.]+).*/\\1/p" |
        awk '{ n += $1 } END { printf "%.0f", n }'
}

# The storm of make demo: under contention, a process hands a checked-in
# connection to its own next caller (keeping the slot) for a bounded share,
# then yields the slot to the oldest waiter of another process. So few
# connections are opened, every process is served, and the limit holds.
test_storm_pgbench_reuses_connections_under_host_limit() {
    sql "drop database if exists hlbench" >/dev/null
    sql "drop role if exists hlbench" >/dev/null
    sql "create role hlbench login connection limit 9" >/dev/null
    sql "create database hlbench owner hlbench" >/dev/null
    on_exit "sql 'drop database if exists hlbench with (force)'; sql 'drop role if exists hlbench'"
    PGUSER=hlbench "$PGBENCH" -i -q -s 1 hlbench >"$T/init.out" 2>&1 ||
        fail "pgbench -i: $(cat "$T/init.out")"
    printf '%s\n' '\set aid random(1, 100000)' \
        'SELECT abalance FROM pgbench_accounts WHERE aid = :aid;' \
        'SELECT pg_sleep(0.1);' >"$T/txn.sql"

    pgbench_storm direct || fail "direct pgbench storm"
    sampler_start application_name
    # (The subshell's own cleanup must not stop the sampler.)
    (TRACKED_PIDS=(); PQSHIM_HOST_LIMIT=8 PQSHIM_POOL_TIMEOUT=30 PQSHIM_CONTROL="$T/ctl.%p" \
        pgbench_storm shim shimmed) &
    local storm=$!
    track_pid $storm
    # While it runs, a process's status shows what it kept and gave up.
    wait_until 10 handed_on_in_status || fail "no status showed hand-offs during the storm"
    wait_pid $storm 90 || fail "pgbench storm through the shim"
    sampler_stop
    cat "$T/status.json"
    "$PYTHON" - "$T/status.json" <<'PY' || fail "status host fields: $(cat "$T/status.json")"
import json, sys
h = json.load(open(sys.argv[1]))["pools"][0]["host"]
assert h["limit"] == 8 and h["handoffs_total"] > 0, h
assert h["yields_total"] >= 0 and 0 <= h["longest_wait_s"] < 30, h
PY

    local i txns opened tps direct_tps aborted waited mean n
    txns=$(pgbench_sum shim "number of transactions actually processed:")
    tps=$(pgbench_sum shim "tps =")
    direct_tps=$(pgbench_sum direct "tps =")
    aborted=$(cat "$T"/shim.[1-6].out | grep -c "aborted" || true)
    cat "$T"/shim.[1-6].log >"$T/shim.log"
    opened=$(count_events "$T/shim.log" connect)
    waited=$(sed -nE 's/.* event=checkout .*wait_ms=([0-9]+).*/\1/p' "$T/shim.log" | sort -n | tail -n 1)
    echo "pgbench storm 6x4, host limit 8: $txns transactions, $opened connections opened," \
        "$tps tps (direct $direct_tps tps), longest wait ${waited:-0} ms"
    for i in 1 2 3 4 5 6; do
        echo "  process $i: $(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$T/shim.$i.out") transactions"
    done
    assert_eq 0 "$aborted" "clients aborted"
    assert_eq 0 "$(count_events "$T/shim.log" host_timeout)" "host timeouts"
    assert_eq 0 "$(count_events "$T/shim.log" connect_failed)" "failed connects"
    assert_le 8 "$(sampler_peak hl)" "peak server connections across processes"
    assert_ge 1 "$(sampler_peak hl)" "peak server connections (the sampler saw the run)"
    assert_ge 50 "$txns" "transactions"
    assert_le $((txns / 4)) "$opened" "connections opened (at most 25% of transactions)"
    [ "$tps" -gt "$direct_tps" ] || fail "$tps tps is not above direct $direct_tps tps"
    assert_ge 1 "$(grep -c 'reason=host_demand' "$T/shim.log")" "slots yielded to other processes"
    # No process starved: each within half to twice the mean.
    mean=$((txns / 6))
    for i in 1 2 3 4 5 6; do
        n=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$T/shim.$i.out")
        assert_ge $((mean / 2)) "${n:-0}" "process $i's transactions (mean $mean)"
        assert_le $((mean * 2)) "${n:-0}" "process $i's transactions (mean $mean)"
    done
    assert_le 3000 "${waited:-0}" "longest wait of a connect (ms)"
}
