# Helpers for the capped-pool integration tests (30-capped.sh and
# 31-capped-faults.sh). Sourced by those files after common.sh; not a test
# file itself (the runner only runs tests/integration/*.sh).

# ---- sampling the server's connections ----------------------------------------

# sampler_start [GROUP_EXPR]: from a direct connection (no shim), count the
# ordinary client backends other than itself every 20 ms, per value of the
# SQL expression GROUP_EXPR over pg_stat_activity (default: one group),
# until sampler_stop. Returns once the first sample is taken.
sampler_start() {
    local group=${1:-"'all'"}
    rm -f "$T/sampler.out" "$T/sampler.stop" "$T/sampler.ready"
    "$PYTHON" "$HELPERS/sampler.py" "$T/sampler.out" "$T/sampler.stop" "$T/sampler.ready" "$group" &
    SAMPLER_PID=$!
    track_pid "$SAMPLER_PID"
    wait_until 10 test -e "$T/sampler.ready" || fail "connection sampler did not start"
}

# sampler_stop: take a last sample, then print the peaks
# ("total N", "group KEY N", "samples N") and keep them in $T/sampler.out.
sampler_stop() {
    touch "$T/sampler.stop"
    wait_pid "$SAMPLER_PID" 10 || fail "connection sampler failed"
    cat "$T/sampler.out"
}

sampler_peak() {  # [GROUP-KEY]: the peak of one group, or of all together
    if [ $# -eq 0 ]; then
        awk '$1 == "total" {print $2}' "$T/sampler.out"
    else
        awk -v k="$1" '$1 == "group" && $2 == k {print $3; f = 1} END {if (!f) print 0}' \
            "$T/sampler.out"
    fi
}

# ---- scripted clients --------------------------------------------------------

# pool_script_bg NAME: run build/tests/pool_script with the shim on the
# script $T/NAME.script in the background; output in $T/NAME.out/.err.
# $POOL_SCRIPT_PID is the client's own pid.
pool_script_bg() {
    shimmed exec "$TESTBIN/pool_script" <"$T/$1.script" >"$T/$1.out" 2>"$T/$1.err" &
    POOL_SCRIPT_PID=$!
    track_pid "$POOL_SCRIPT_PID"
}

# pool_script_run NAME: the same in the foreground (20 s at most).
pool_script_run() {
    pool_script_bg "$1"
    wait_pid "$POOL_SCRIPT_PID" 20 || fail "pool_script $1 failed: $(cat "$T/$1.err")"
}

# output_is EXPECTED CMD...: CMD prints exactly EXPECTED (for wait_until,
# which evaluates its arguments once).
output_is() {
    local expected=$1
    shift
    [ "$("$@")" = "$expected" ]
}

# line_value FILE REGEX: the first capture group of the first line matching
# the sed regex (extended syntax), e.g. line_value out '^connect 1 ok pid=([0-9]+)'
line_value() {
    sed -nE "s/$2.*/\\1/p" "$1" | head -n 1
}

# expect_transcript FILE [SED-ARGS...] <EXPECTED: FILE, with timings and
# trailing blanks removed and the SED-ARGS applied, must equal EXPECTED.
expect_transcript() {
    local actual=$1
    shift
    sed -E -e 's/ ms=[0-9.]+//' -e 's/[[:space:]]+$//' "$@" "$actual" >"$actual.norm"
    cat >"$actual.expected"
    diff -u "$actual.expected" "$actual.norm" >&2 ||
        fail "$actual differs from the expected transcript (diff above)"
}

# ---- the server log ------------------------------------------------------------

# server_log_mark: make sure the server writes to $CLUSTER_LOG (restarting
# it with the log when an earlier restart lost it), then print the log's
# current size for server_log_since.
server_log_mark() {
    local probe="pqshim_log_probe_$$_$RANDOM"
    PGAPPNAME=$probe sql "select 1" >/dev/null
    if ! wait_until 3 grep -q "application_name=$probe" "$CLUSTER_LOG"; then
        cluster_restart fast || fail "could not restart the cluster"
        PGAPPNAME=$probe sql "select 1" >/dev/null
        wait_until 3 grep -q "application_name=$probe" "$CLUSTER_LOG" ||
            fail "the server does not write to $CLUSTER_LOG"
    fi
    stat -c %s "$CLUSTER_LOG"
}

server_log_since() {  # MARK: the server log written after server_log_mark
    tail -c "+$(($1 + 1))" "$CLUSTER_LOG"
}
