# Helpers for the fault, bad-input and security tests (50-faults.sh,
# 52-bad-input.sh, 53-security.sh) and the soak run. Sourced after
# common.sh; not a test file itself.

# Tracked processes (common.sh) of these tests are killed outright: a
# process still running at the end of a fault test is presumed hung.
TRACK_KILL_SIGNAL=KILL

# ---- the server ------------------------------------------------------------------

# backends_of APP: server connections with that application_name.
backends_of() {
    sql "select count(*) from pg_stat_activity where application_name = '$1'"
}

# conn_sampler_start APP: from direct connections (no shim), count the
# backends with application_name APP every 20 ms until conn_sampler_stop,
# reconnecting whenever the server goes away. Returns after the first sample.
conn_sampler_start() {
    rm -f "$T/conn_sampler.out" "$T/conn_sampler.stop" "$T/conn_sampler.ready"
    "$PYTHON" "$HELPERS/conn_sampler.py" "$1" "$T/conn_sampler.out" "$T/conn_sampler.stop" \
        "$T/conn_sampler.ready" &
    SAMPLER_PID=$!
    track_pid "$SAMPLER_PID"
    wait_until 10 test -e "$T/conn_sampler.ready" || fail "connection sampler did not start"
}

# conn_sampler_stop: print "peak=N samples=M".
conn_sampler_stop() {
    touch "$T/conn_sampler.stop"
    wait_pid "$SAMPLER_PID" 10 || fail "connection sampler failed"
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
    track_pid "$STORM_PID"
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
    rm -f "$T/silent.port"
    "$PYTHON" "$HELPERS/silent_server.py" "$T/silent.port" &
    track_pid $!
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

# ---- a server with no free connection slot -----------------------------------------------

FULL_ROLE=pqshim_full

# full_holder_start RELEASE_AFTER: a direct (unshimmed) process that, as a
# non-superuser role, opens connections until the server refuses one, then
# keeps grabbing any slot that frees up, until $T/release exists or
# RELEASE_AFTER seconds have passed (negative: only the file). The reserved
# superuser slots stay free for the test's own queries.
full_holder_start() {
    sql "do \$\$ begin if not exists (select from pg_roles where rolname = '$FULL_ROLE')
         then create role $FULL_ROLE login; end if; end \$\$" >/dev/null
    rm -f "$T/holder.ready" "$T/release"
    "$PYTHON" "$HELPERS/full_holder.py" "$FULL_ROLE" "$T/holder.ready" "$T/release" "$1" \
        >"$T/holder.out" 2>&1 &
    HOLDER_PID=$!
    track_pid "$HOLDER_PID"
    wait_until 30 test -e "$T/holder.ready" || { cat "$T/holder.out"; fail "the holder did not fill the server"; }
    echo "holder took $(cat "$T/holder.ready") connections"
}
