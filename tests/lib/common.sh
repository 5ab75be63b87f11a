# Shared fixtures for the integration tests: a throwaway PostgreSQL cluster,
# the shim under test, and assertions. Sourced by tests/run.sh.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
SHIM="$BUILD/libpqshim.so"
LAUNCHER="$BUILD/pqshim"
TESTBIN="$BUILD/tests"
# Helper programs the tests run (Python, Perl, Ruby, PHP, C sources).
HELPERS="$ROOT/tests/helpers"
# Call the server's binaries directly: /usr/bin/psql and /usr/bin/pgbench
# are Perl wrappers that a preload would also reach.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
PSQL="$PG_BIN/psql"
PGBENCH="$PG_BIN/pgbench"
PYTHON=/usr/bin/python3

# Sanitizer runtimes must come first in LD_PRELOAD.
case "${TEST_SANITIZER:-}" in
    asan) SAN_PRELOAD="$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so) $BUILD/tests/libswiftstub.so "
          export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
          export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} ;;
    # The shim starts threads (janitor, control) in forked children of
    # threaded parents, which TSan refuses unless told.
    tsan) SAN_PRELOAD="$(cc -print-file-name=libtsan.so) $BUILD/tests/libswiftstub.so "
          export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:report_signal_unsafe=0:die_after_fork=0} ;;
    *) SAN_PRELOAD="" ;;
esac
SHIM_PRELOAD="${SAN_PRELOAD}$SHIM"

# ---- cluster ---------------------------------------------------------------

CLUSTER_DIR=""
CLUSTER_OWNER=""

pg_as_owner() {
    if [ -n "$CLUSTER_OWNER" ]; then
        runuser -u "$CLUSTER_OWNER" -- "$@"
    else
        "$@"
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# cluster_start [max_connections]: initdb into a temp dir (owned by an
# unprivileged user when run as root), trust auth, Unix socket in the temp
# dir plus a loopback port below 32768. Exports PGHOST, PGPORT, PGUSER,
# PGDATABASE for the clients and CLUSTER_LOG for the server log.
cluster_start() {
    local maxconn=${1:-40}
    CLUSTER_DIR=$(mktemp -d /tmp/pqshim-test.XXXXXX)
    chmod 755 "$CLUSTER_DIR"
    if [ "$(id -u)" = 0 ]; then
        CLUSTER_OWNER=postgres
        id "$CLUSTER_OWNER" >/dev/null 2>&1 || CLUSTER_OWNER=nobody
        chown "$CLUSTER_OWNER" "$CLUSTER_DIR"
    fi
    pg_as_owner "$PG_BIN/initdb" -D "$CLUSTER_DIR/data" -A trust -U postgres \
        --no-sync >"$CLUSTER_DIR/initdb.log" 2>&1 || {
        cat "$CLUSTER_DIR/initdb.log" >&2; return 1; }
    CLUSTER_LOG="$CLUSTER_DIR/server.log"
    local try port
    for try in 1 2 3 4 5 6 7 8; do
        port=$((20000 + (RANDOM % 12000)))
        port_in_use "$port" && continue
        if pg_as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_LOG" -w -t 60 \
            -o "-k $CLUSTER_DIR -p $port -c listen_addresses=127.0.0.1 -c max_connections=$maxconn -c fsync=off -c log_connections=on -c log_disconnections=on" \
            start >/dev/null 2>&1; then
            export PGHOST="$CLUSTER_DIR" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
            unset PGPASSWORD PGSERVICE PGOPTIONS PGAPPNAME
            return 0
        fi
    done
    echo "could not start a test cluster; server log:" >&2
    cat "$CLUSTER_LOG" >&2
    return 1
}

cluster_stop() {
    [ -n "$CLUSTER_DIR" ] || return 0
    pg_as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$CLUSTER_DIR"
    CLUSTER_DIR=""
}

cluster_restart() {  # [fast|immediate]
    pg_as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_LOG" -m "${1:-fast}" -w -t 60 restart \
        -o "-k $CLUSTER_DIR -p $PGPORT -c listen_addresses=127.0.0.1 -c max_connections=${CLUSTER_MAXCONN:-40} -c fsync=off -c log_connections=on -c log_disconnections=on" \
        >/dev/null 2>&1
}

# ---- running things ----------------------------------------------------------

# sql "QUERY": run a query directly (no shim), unaligned, tuples only.
sql() {
    "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"
}

# shimmed CMD...: run CMD with the shim preloaded.
shimmed() {
    LD_PRELOAD="$SHIM_PRELOAD${LD_PRELOAD:+ $LD_PRELOAD}" "$@"
}

# Server connections of ordinary clients (backend_type = client backend),
# excluding the one asking.
server_connections() {
    sql "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()"
}

# count_events FILE EVENT: lines of that event in a pqshim log file.
count_events() {
    grep -c " event=$2\( \|$\)" "$1" 2>/dev/null || true
}

# wait_until SECONDS CMD...: poll CMD every 50 ms until it succeeds.
wait_until() {
    local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
    until "$@"; do
        [ "$(date +%s%N)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# await_line FILE REGEX [SECONDS]: wait until a line of FILE matches.
await_line() {
    wait_until "${3:-10}" grep -qE -- "$2" "$1" ||
        fail "no line matching '$2' in $1: $(cat "$1" 2>/dev/null)"
}

# ---- background processes of a test --------------------------------------------

# Processes a test starts and cleanup commands it registers, run when its
# subshell exits whether it passed or not. TRACK_KILL_SIGNAL (default TERM)
# is what tracked processes get then.
TRACKED_PIDS=()
TRACKED_CLEANUP=()

tracked_cleanup() {
    local p c
    for p in "${TRACKED_PIDS[@]}"; do kill -"${TRACK_KILL_SIGNAL:-TERM}" "$p" 2>/dev/null || true; done
    for p in "${TRACKED_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for c in "${TRACKED_CLEANUP[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
}

track_pid() {  # PID
    TRACKED_PIDS+=("$1")
    trap tracked_cleanup EXIT
}

on_exit() {  # SHELL-COMMAND
    TRACKED_CLEANUP+=("$1")
    trap tracked_cleanup EXIT
}

# wait_pid PID SECONDS: wait for a background process at most SECONDS and
# return its exit status; one that overstays is killed (a hang) and one
# killed by a signal (a crash) fails the call.
wait_pid() {
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

# skip_test REASON: the test passes, and the runner's output says it was
# skipped and why. $$ is the runner's shell (subshells keep it): its output
# is told when that is a terminal or a pipe (into a regular file, the
# runner's next line would overwrite ours).
skip_test() {
    echo "skipped: $1" >&2
    local label="" f
    for f in "${FUNCNAME[@]}"; do
        case "$f" in test_*) label=${f#test_} ;; esac
    done
    if [ -n "$label" ] && { [ -p "/proc/$$/fd/1" ] || [ -c "/proc/$$/fd/1" ]; }; then
        printf 'skip %-58s %s\n' "${TEST_FILE:+$TEST_FILE: }$label" "($1)" >>"/proc/$$/fd/1" 2>/dev/null || true
    fi
}

# ---- assertions ----------------------------------------------------------------

fail() { echo "    assertion failed: $*" >&2; return 1; }

assert_eq() {  # EXPECTED ACTUAL WHAT
    [ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
}

assert_le() {  # LIMIT ACTUAL WHAT
    [ "$2" -le "$1" ] || fail "$3: expected at most $1, got $2"
}

assert_ge() {  # MIN ACTUAL WHAT
    [ "$2" -ge "$1" ] || fail "$3: expected at least $1, got $2"
}

assert_contains() {  # HAYSTACK NEEDLE WHAT
    case "$1" in *"$2"*) return 0 ;; esac
    fail "$3: '$2' not found in: $1"
}

assert_not_contains() {  # HAYSTACK NEEDLE WHAT
    case "$1" in *"$2"*) fail "$3: '$2' unexpectedly found in: $1" ;; esac
    return 0
}

assert_file_contains() {  # FILE NEEDLE WHAT
    grep -qF -- "$2" "$1" 2>/dev/null || fail "$3: '$2' not in $1: $(head -c 2000 "$1" 2>/dev/null)"
}
