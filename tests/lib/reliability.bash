# Helpers for the fault, bad-input and security tests (50-faults.sh,
# 52-bad-input.sh, 53-security.sh) and the soak run. Sourced after
# common.sh; not a test file itself.

# ---- background processes -------------------------------------------------------

# Processes of the current test, killed when its subshell exits whether it
# passed or not; cleanup commands run after them.
REL_PIDS=()
REL_CLEANUP=()

rel_cleanup() {
    local p c
    for p in "${REL_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${REL_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for c in "${REL_CLEANUP[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
}

rel_track() {  # PID
    REL_PIDS+=("$1")
    trap rel_cleanup EXIT
}

rel_on_exit() {  # SHELL-COMMAND
    REL_CLEANUP+=("$1")
    trap rel_cleanup EXIT
}

# rel_wait PID SECONDS: wait for a background process at most SECONDS and
# return its exit status; a process that overstays is killed (a hang) and
# the call fails. A status above 128 (killed by a signal) is a crash.
rel_wait() {
    if ! wait_until "$2" eval "! kill -0 $1 2>/dev/null"; then
        kill -9 "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
        fail "process $1 still running after $2 s (hung)"
        return 1
    fi
    local rc=0
    wait "$1" || rc=$?
    if [ "$rc" -gt 128 ]; then
        fail "process $1 died of signal $((rc - 128))"
        return 1
    fi
    return $rc
}

# ---- the server ------------------------------------------------------------------

# restart_server fast|immediate: cluster_restart that keeps the server
# writing to $CLUSTER_LOG (pg_ctl restart without -l sends it elsewhere).
restart_server() {
    pg_as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_LOG" -m "$1" \
        -w -t 60 restart \
        -o "-k $CLUSTER_DIR -p $PGPORT -c listen_addresses=127.0.0.1 -c max_connections=${CLUSTER_MAXCONN:-40} -c fsync=off -c log_connections=on -c log_disconnections=on" \
        >/dev/null 2>&1
}

# backends_of APP: server connections with that application_name.
backends_of() {
    sql "select count(*) from pg_stat_activity where application_name = '$1'"
}

# conn_sampler_start APP: from direct connections (no shim), count the
# backends with application_name APP every 20 ms until conn_sampler_stop,
# reconnecting whenever the server goes away. Returns after the first sample.
conn_sampler_start() {
    cat >"$T/conn_sampler.py" <<'EOF'
import os, sys, time
import psycopg2

app, out, stop, ready = sys.argv[1:5]
peak = samples = 0
conn = None
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        if conn is None:
            conn = psycopg2.connect("", application_name="conn_sampler")
            conn.autocommit = True
        cur = conn.cursor()
        cur.execute("select count(*) from pg_stat_activity where application_name = %s", (app,))
        peak = max(peak, cur.fetchone()[0])
        samples += 1
        if samples == 1:
            open(ready, "w").close()
    except psycopg2.Error:
        try:
            conn.close()
        except Exception:
            pass
        conn = None
    if os.path.exists(stop):
        break
    time.sleep(0.02)
with open(out + ".tmp", "w") as f:
    f.write("peak=%d samples=%d\n" % (peak, samples))
os.rename(out + ".tmp", out)
EOF
    rm -f "$T/conn_sampler.out" "$T/conn_sampler.stop" "$T/conn_sampler.ready"
    "$PYTHON" "$T/conn_sampler.py" "$1" "$T/conn_sampler.out" "$T/conn_sampler.stop" \
        "$T/conn_sampler.ready" &
    SAMPLER_PID=$!
    rel_track "$SAMPLER_PID"
    wait_until 10 test -e "$T/conn_sampler.ready" || fail "connection sampler did not start"
}

# conn_sampler_stop: print "peak=N samples=M".
conn_sampler_stop() {
    touch "$T/conn_sampler.stop"
    rel_wait "$SAMPLER_PID" 10 || fail "connection sampler failed"
    cat "$T/conn_sampler.out"
}

# ---- clients ---------------------------------------------------------------------

# storm_bg NAME ARGS...: build/tests/storm with the shim, in the background,
# output in $T/NAME.out and $T/NAME.err; $STORM_PID is the client itself.
storm_bg() {
    local name=$1
    shift
    shimmed exec "$TESTBIN/storm" "$@" >"$T/$name.out" 2>"$T/$name.err" &
    STORM_PID=$!
    rel_track "$STORM_PID"
}

# field FILE NAME: the value of NAME=... on the first line of FILE that has it.
field() {
    sed -nE "s/^(.* )?$2=([^ ]*).*/\\2/p" "$1" | head -n 1
}

# show FILE...: print files (for the test's output when it fails).
show() {
    local f
    for f in "$@"; do
        echo "--- $f"
        head -c 4000 "$f" 2>/dev/null || true
    done
}

# ---- network ---------------------------------------------------------------------

# free_port: a loopback TCP port nothing listens on (bound, then released).
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# silent_listener_start: a loopback TCP socket that listens but never
# accepts or answers: connects complete, the startup packet gets no reply.
# Sets SILENT_PORT.
silent_listener_start() {
    cat >"$T/silent.py" <<'EOF'
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d\n" % s.getsockname()[1])
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(120)
EOF
    rm -f "$T/silent.port"
    "$PYTHON" "$T/silent.py" "$T/silent.port" &
    rel_track $!
    wait_until 10 test -e "$T/silent.port" || fail "silent listener did not start"
    SILENT_PORT=$(cat "$T/silent.port")
}

# ---- the control socket ------------------------------------------------------------

# ctl SOCKET COMMAND...: pqshimctl's raw reply.
ctl() {
    local sock=$1
    shift
    "$BUILD/pqshimctl" -s "$sock" --json "$@"
}

# pool_value SOCKET TARGET-SUBSTRING KEY: a number from the status of the
# pool whose target contains the substring (empty when there is none).
pool_value() {
    ctl "$1" status | "$PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
for p in d["pools"]:
    if sys.argv[1] in p["target"]:
        print(p[sys.argv[2]])
        break
' "$2" "$3"
}
