# Event-loop programs: an asynchronous connect (PQconnectStart* and a poll
# loop) never blocks the caller's thread, at the pool cap, at the host-wide
# limit, or while the server is full; waiters are served in arrival order
# with blocking ones, time out with the usual error, and can be finished
# while they wait. Real clients: a C poll() loop, asyncio with psycopg 3,
# psycopg_pool, psycopg2's asynchronous mode, FastAPI under uvicorn.

. "$ROOT/tests/lib/capped.bash"
. "$ROOT/tests/lib/reliability.bash"

export PSYCOPG_IMPL=python
# Generous next to what a blocked loop shows (the whole wait: seconds),
# yet room for a busy two-core machine (and more under a sanitizer).
STALL_MAX_MS=500
[ -z "${TEST_SANITIZER:-}" ] || STALL_MAX_MS=1500

# async_tasks OUT ARGS...: tests/helpers/async_tasks.py under the shim.
async_tasks() {
    local out=$1
    shift
    shimmed timeout 120 "$PYTHON" "$HELPERS/async_tasks.py" "$@" >"$out" 2>"$out.err" ||
        fail "async_tasks $*: $(cat "$out.err")"
    cat "$out"
}

json_field() {  # FILE KEY
    "$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

stall_ok() {  # FILE: the loop's longest stall is below STALL_MAX_MS
    local ms
    ms=$(json_field "$1" max_stall_ms)
    "$PYTHON" -c "import sys; sys.exit(0 if $ms < $STALL_MAX_MS else 1)" ||
        fail "the event loop stalled $ms ms (at most $STALL_MAX_MS)"
}

# Six asyncio tasks, each holding its connection across an await, with a
# cap of 2: no error, the loop keeps running, the server never sees more
# than 2, and the waits are logged as asynchronous.
test_asyncio_tasks_above_cap() {
    sampler_start application_name
    PGAPPNAME=asyncio PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=1 \
        PQSHIM_LOG=$T/shim.log async_tasks "$T/out" 6 0.4
    sampler_stop
    assert_eq 0 "$(json_field "$T/out" errors)" "failed tasks"
    stall_ok "$T/out"
    assert_le 2 "$(sampler_peak asyncio)" "peak server connections"
    assert_ge 1 "$(sampler_peak asyncio)" "peak server connections (the sampler saw the run)"
    assert_ge 1 "$(grep -c 'event=wait .*async=1' "$T/shim.log")" "wait lines with async=1"
    assert_eq 0 "$(count_events "$T/shim.log" timeout)" "timeouts"
}

# A C program's poll() loop, cap 1: every connect completes in the order
# it was started, no single libpq call blocks the loop.
test_c_poll_loop_fifo_at_cap() {
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_LOG=$T/shim.log \
        shimmed timeout 60 "$TESTBIN/async_loop" 6 200 30 >"$T/out" || fail "async_loop failed"
    cat "$T/out"
    assert_eq 6 "$(field "$T/out" ok)" "connects that succeeded"
    assert_eq 0 "$(field "$T/out" failed)" "connects that failed"
    assert_eq 0,1,2,3,4,5 "$(field "$T/out" order)" "order the connects completed in"
    local worst
    worst=$(field "$T/out" worst_call_ms)
    assert_le "$STALL_MAX_MS" "${worst%.*}" "longest single libpq call (ms)"
    assert_eq 5 "$(grep -c 'event=wait .*async=1' "$T/shim.log")" "asynchronous waits"
}

# Blocking and asynchronous waiters share one line: a thread that waits
# before an asynchronous connect is served before it.
test_blocking_and_async_waiters_fifo() {
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_LOG=$T/shim.log \
        shimmed timeout 60 "$PYTHON" "$HELPERS/async_mixed_waiters.py" >"$T/out" 2>"$T/err" || fail "mixed waiters: $(cat "$T/err")"
    assert_eq "blocking,async" "$(cat "$T/out")" "order the waiters were served in"
    assert_eq 1 "$(grep -c 'event=wait .*async=1' "$T/shim.log")" "asynchronous waits"
}

# Two processes share a host-wide limit of 2 under the null policy: the
# asyncio programs wait in their own loops, and the server sees at most 2.
test_asyncio_two_processes_host_limit() {
    sampler_start application_name
    local i pids=()
    for i in 1 2; do
        PGAPPNAME=hl_async PQSHIM_HOST_LIMIT=2 PQSHIM_HOST_LIMIT_FILE=$T/host.limit \
            PQSHIM_LOG=$T/shim.$i.log async_tasks "$T/out.$i" 4 0.3 &
        pids+=($!)
        track_pid $!
    done
    for i in "${pids[@]}"; do wait_pid "$i" 120 || fail "an asyncio process failed"; done
    sampler_stop
    for i in 1 2; do
        assert_eq 0 "$(json_field "$T/out.$i" errors)" "failed tasks in process $i"
        stall_ok "$T/out.$i"
    done
    cat "$T"/shim.*.log >"$T/shim.log"
    assert_le 2 "$(sampler_peak hl_async)" "peak server connections across processes"
    assert_ge 1 "$(grep -c 'event=host_wait .*async=1' "$T/shim.log")" "host_wait lines with async=1"
    assert_eq 0 "$(count_events "$T/shim.log" host_timeout)" "host timeouts"
}

# The server is full (a holder takes every slot until told to let go):
# asyncio tasks under the null policy are retried behind the gate, in
# their own loop, and all succeed once slots free up; without the shim
# they fail. The server stays full until a task has retried seven times
# (backoff: at least 2.5 s), and a loop that waited in a retry would have
# stalled that whole time: the longest stall must stay well below it,
# measured in the same run, whatever else the machine is doing.
test_asyncio_server_full_retry() {
    full_holder_start -1
    PQSHIM_LOG=$T/shim.log PGUSER=$FULL_ROLE async_tasks "$T/out" 4 0.1 --stagger-ms 0 &
    local pid=$!
    track_pid $pid
    await_line "$T/shim.log" 'event=retry .*async=1' 60
    local full_from full_ms
    full_from=$(date +%s%N)
    await_line "$T/shim.log" 'event=retry .*attempt=8 .*async=1' 60
    full_ms=$(( ($(date +%s%N) - full_from) / 1000000 ))
    touch "$T/release"
    wait_pid $pid 60 || fail "async_tasks failed"
    wait_pid "$HOLDER_PID" 10 || fail "the holder failed: $(cat "$T/holder.out")"
    assert_eq 0 "$(json_field "$T/out" errors)" "failed tasks"
    echo "server full for ${full_ms} ms after the first retry"
    assert_ge 2000 "$full_ms" "ms the server stayed full after the first retry"
    STALL_MAX_MS=$((full_ms / 2)) stall_ok "$T/out"
    assert_not_contains "$(grep retry "$T/shim.log" | head -n 1)" "pqshim-gate" "retry line names the gate"
    assert_eq 0 "$(count_events "$T/shim.log" connect_failed)" "failed connects"

    full_holder_start -1
    PGUSER=$FULL_ROLE timeout 60 "$PYTHON" "$HELPERS/async_tasks.py" 4 0.1 \
        --stagger-ms 0 >"$T/direct" 2>&1
    touch "$T/release"
    wait_pid "$HOLDER_PID" 10 || fail "the holder failed: $(cat "$T/holder.out")"
    cat "$T/direct"
    assert_eq 4 "$(json_field "$T/direct" errors)" "failed tasks without the shim"
}

# psycopg_pool's AsyncConnectionPool may grow to 6 connections; the shim's
# cap of 2 holds, and the application pool's tasks never fail.
test_psycopg_async_connection_pool() {
    "$PYTHON" -c 'import psycopg_pool' 2>/dev/null || { skip_test "psycopg_pool not installed"; return 0; }
    sampler_start application_name
    PGAPPNAME=apool PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=1 \
        PQSHIM_LOG=$T/shim.log async_tasks "$T/out" 6 0.3 --pool
    sampler_stop
    assert_eq 0 "$(json_field "$T/out" errors)" "failed tasks"
    stall_ok "$T/out"
    assert_le 2 "$(sampler_peak apool)" "peak server connections"
}

# psycopg2's asynchronous connections (async_=1) polled from one thread:
# three beyond a cap of 1 all connect in turn.
test_psycopg2_async_mode() {
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_LOG=$T/shim.log \
        shimmed timeout 60 "$PYTHON" "$HELPERS/psycopg2_async.py" >"$T/out" 2>"$T/err" || fail "psycopg2 async: $(cat "$T/err")"
    cat "$T/out"
    assert_contains "$(cat "$T/out")" "waiting True" "the second connect waits in the program's loop"
    assert_contains "$(cat "$T/out")" "result 1" "the second connection works"
    assert_eq 1 "$(grep -c 'event=wait .*async=1' "$T/shim.log")" "asynchronous waits"
}

# PQSHIM_POOL_TIMEOUT ends an asynchronous wait with the usual error,
# through the program's poll loop (PGRES_POLLING_FAILED).
test_async_wait_times_out() {
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=0.5 \
        PQSHIM_LOG=$T/shim.log shimmed timeout 60 "$TESTBIN/async_loop" 3 2000 20 >"$T/out" ||
        fail "async_loop failed"
    cat "$T/out"
    assert_eq 1 "$(field "$T/out" ok)" "connects that succeeded"
    assert_eq 2 "$(field "$T/out" failed)" "connects that timed out"
    assert_contains "$(cat "$T/out")" "error=pqshim: pool limit of size 1 overflow 0 reached for postgres@" "error text"
    assert_contains "$(cat "$T/out")" "connection timed out, timeout 0.50s (PQSHIM_POOL_TIMEOUT)" "error text"
    assert_eq 2 "$(grep -c 'event=timeout .*async=1' "$T/shim.log")" "timeout lines with async=1"
}

# The timeout's message must be there whenever libpq reports the failure,
# however the threads interleave (the keeper settles the gate before it
# answers): fifteen rounds.
test_async_timeout_message_every_time() {
    local i
    for i in $(seq 1 15); do
        PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=0.2 \
            PQSHIM_LOG=$T/shim.log shimmed timeout 60 "$TESTBIN/async_loop" 2 600 0 >"$T/out.$i" ||
            fail "async_loop failed"
        assert_contains "$(cat "$T/out.$i")" "failed=1" "round $i: the waiter timed out"
        assert_contains "$(cat "$T/out.$i")" "error=pqshim: pool limit of size 1 overflow 0 reached" \
            "round $i: the timeout's message"
    done
    assert_eq 0 "$(count_events "$T/shim.log" connect_failed)" "timeouts logged as failed connects"
}

# PQfinish on a waiting connection leaves the line at once: the holder's
# checkin then keeps its connection (nobody waits), and status says so.
test_finish_while_waiting() {
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_LOG=$T/shim.log \
        PQSHIM_LOG_LEVEL=debug PQSHIM_CONTROL=$T/ctl.sock \
        shimmed timeout 60 "$TESTBIN/async_loop" 4 3000 20 finish-waiting 1500 >"$T/out" &
    local pid=$!
    track_pid $pid
    wait_until 10 test -S "$T/ctl.sock" || fail "no control socket"
    wait_until 10 output_is 3 pool_value "$T/ctl.sock" postgres@ waiting || fail "three waiting: $(ctl "$T/ctl.sock" status)"
    wait_until 10 output_is 0 pool_value "$T/ctl.sock" postgres@ waiting || fail "waiting after the finishes"
    wait_pid $pid 30 || fail "async_loop failed"
    cat "$T/out"
    assert_eq 1 "$(field "$T/out" ok)" "connects that succeeded"
    assert_eq 3 "$(field "$T/out" abandoned)" "connects finished while waiting"
    assert_eq 0 "$(grep -c 'reason=handoff' "$T/shim.log")" "connections closed for a waiter that left"
    assert_eq 1 "$(grep -c 'event=checkin ' "$T/shim.log")" "the holder's checkin kept its connection"
    assert_eq 0 "$(count_events "$T/shim.log" timeout)" "timeouts"
}

# Fork while an asynchronous connect waits: the child works on its own,
# and the parent's waiter completes once the slot is free.
test_fork_while_waiting() {
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_LOG=$T/shim.log \
        shimmed timeout 60 "$TESTBIN/async_fork" >"$T/out" 2>"$T/err" || fail "async_fork: $(cat "$T/out" "$T/err")"
    assert_eq "waiting=yes child=ok parent=ok" "$(cat "$T/out")" "fork while waiting"
}

# A FastAPI app under uvicorn whose endpoints connect per request, on a
# server with few slots: every request answered, at most 3 server
# connections, the event loop never frozen (/ping answers throughout).
test_fastapi_uvicorn_capped() {
    "$PYTHON" -c 'import fastapi, uvicorn, httpx' 2>/dev/null || { skip_test "fastapi, uvicorn or httpx not installed"; return 0; }
    sampler_start application_name
    # In sanitizer builds their runtimes must come first (the launcher
    # puts the shim after them).
    PGAPPNAME=fastapi PQSHIM_POOL_TIMEOUT=60 LD_PRELOAD="${SAN_PRELOAD% }" \
        "$LAUNCHER" --policy capped --pool-size 2 --max-overflow 1 --log "$T/shim.log" -- \
        "$PYTHON" -m uvicorn --app-dir "$ROOT/tests/helpers" fastapi_app:app --uds "$T/app.sock" \
        --log-level warning >"$T/uvicorn.log" 2>&1 &
    local pid=$!
    track_pid $pid
    wait_until 30 test -S "$T/app.sock" || fail "uvicorn did not start: $(cat "$T/uvicorn.log")"
    local ep
    for ep in sync async; do
        timeout 300 "$PYTHON" "$HELPERS/http_load.py" "$T/app.sock" /$ep 200 20 >"$T/$ep.json" ||
            fail "load on /$ep failed"
        echo "/$ep: $(cat "$T/$ep.json")"
        assert_eq 200 "$(json_field "$T/$ep.json" ok)" "requests to /$ep answered 200"
        local ping
        ping=$(json_field "$T/$ep.json" max_ping_ms)
        "$PYTHON" -c "import sys; sys.exit(0 if $ping < 3000 else 1)" ||
            fail "/ping took $ping ms during the load on /$ep (the event loop froze)"
    done
    sampler_stop
    assert_le 3 "$(sampler_peak fastapi)" "peak server connections"
    assert_ge 1 "$(grep -c 'event=wait .*async=1' "$T/shim.log")" "asynchronous waits"
    assert_eq 0 "$(count_events "$T/shim.log" timeout)" "timeouts"
}

# Host lists, hostaddr and port lists survive the gate in front of them:
# libpq still tries the program's hosts in order, reports the one it
# reached, and keeps its own error text when none answers.
test_gate_keeps_host_lists() {
    local dead
    dead=$(free_port)
    PQSHIM_LOG=$T/shim.log shimmed timeout 60 "$PYTHON" "$HELPERS/async_host_lists.py" "$dead" >"$T/out" 2>"$T/err" ||
        fail "host lists: $(cat "$T/err")"
    timeout 60 "$PYTHON" "$HELPERS/async_host_lists.py" "$dead" >"$T/direct" 2>&1 || fail "host lists, directly: $(cat "$T/direct")"
    cat "$T/out"
    assert_eq 4 "$(grep -c '^ok 1 ' "$T/out")" "connections through host lists"
    assert_contains "$(sed -n 1p "$T/out")" "ok 1 $PGHOST $PGPORT" "the host libpq reached"
    assert_contains "$(grep refused "$T/out")" "Connection refused" "libpq's own error"
    assert_eq "$(cat "$T/direct")" "$(cat "$T/out")" "what the program sees, with and without the shim"
    assert_not_contains "$(cat "$T/out")" "pqshim-gate" "the gate is never shown"
}

# Node.js pg-native above the cap: its connects run on libuv's worker
# threads and wait there; the loop keeps running and the cap holds. The
# npm packages pg and pg-native are installed once into build/node (they
# compile against the system's libpq); without node or npm the test is
# skipped. Node does not run under the sanitizer runtimes.
test_node_pg_native() {
    [ -z "${TEST_SANITIZER:-}" ] || { skip_test "node under $TEST_SANITIZER"; return 0; }
    command -v node >/dev/null && command -v npm >/dev/null || { skip_test "node or npm not installed"; return 0; }
    local dir="$ROOT/build/node"
    if [ ! -e "$dir/node_modules/libpq/build/Release/addon.node" ]; then
        mkdir -p "$dir"
        ( cd "$dir" && [ -e package.json ] || echo '{"private": true}' >package.json
          npm_config_nodedir=/usr timeout 600 npm install --no-audit --no-fund pg-native@3 >npm.log 2>&1 &&
          npm_config_nodedir=/usr timeout 600 npm rebuild libpq --foreground-scripts >>npm.log 2>&1 ) ||
            { tail -n 20 "$dir/npm.log"; skip_test "npm could not install pg-native"; return 0; }
    fi
    sampler_start application_name
    PGAPPNAME=node PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=1 PQSHIM_LOG=$T/shim.log \
        NODE_PATH="$dir/node_modules" shimmed timeout 120 node "$HELPERS/pg_native_load.js" 8 300 \
        >"$T/out" 2>"$T/err" || fail "node: $(cat "$T/err")"
    sampler_stop
    cat "$T/out"
    assert_eq 0 "$(json_field "$T/out" errors)" "failed clients"
    stall_ok "$T/out"
    assert_le 2 "$(sampler_peak node)" "peak server connections"
    assert_ge 1 "$(count_events "$T/shim.log" wait)" "waits at the cap"
}
