# Foundation: the null policy counts exactly what the program does, every
# entry point and host kind is intercepted, configuration mistakes are
# reported without breaking the host, logs go where they are told and never
# show a password, and a process that does not use libpq pays nothing.

# ---- helpers -------------------------------------------------------------------

# events FILE EVENT: like count_events, but 0 for a missing file.
events() {
    local n
    n=$(count_events "$1" "$2")
    echo "${n:-0}"
}

# matching FILE REGEX: lines of FILE matching an extended regex (0 if none).
matching() {
    local n
    n=$(grep -cE -- "$2" "$1" 2>/dev/null || true)
    echo "${n:-0}"
}

# log_mark: the current length of the server log, to count what follows.
log_mark() {
    wc -l <"$CLUSTER_LOG"
}

# authorized_since MARK [DB]: server connections authorized after MARK.
authorized_since() {
    local n
    n=$(tail -n +"$(($1 + 1))" "$CLUSTER_LOG" |
        grep -c "connection authorized: user=postgres database=${2:-postgres}\( \|$\)" || true)
    echo "${n:-0}"
}

# lines FILE: its number of lines (0 for a missing file).
lines() {
    if [ -e "$1" ]; then wc -l <"$1"; else echo 0; fi
}

# psql_one: `psql -c 'select 1'` through the shim, stdout in $T/out and
# stderr in $T/err.
psql_one() {
    shimmed "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>"$T/err" ||
        { echo "psql failed: $(cat "$T/err")" >&2; return 1; }
}

# ---- 1. psql -----------------------------------------------------------------

test_psql_select_null_policy() {
    PQSHIM_LOG=$T/shim.log psql_one
    assert_eq 1 "$(cat "$T/out")" "psql prints the result"
    assert_eq "" "$(cat "$T/err")" "psql stderr"
    assert_eq 1 "$(events "$T/shim.log" connect)" "connect lines"
    assert_eq 1 "$(events "$T/shim.log" close)" "close lines"
    assert_eq 2 "$(wc -l <"$T/shim.log")" "log lines in all"
    local connect close
    connect=$(grep ' event=connect ' "$T/shim.log")
    close=$(grep ' event=close ' "$T/shim.log")
    assert_contains "$connect" "info event=connect target=postgres@$PGHOST:$PGPORT/postgres conn=" "connect line"
    assert_contains "$close" "info event=close target=postgres@$PGHOST:$PGPORT/postgres conn=" "close line"
    assert_contains "$close" " reason=finish " "close reason"
    [[ "$connect" =~ ^pqshim\[[0-9]+\]:\ .*\ backend_pid=([0-9]+)\ ms=[0-9.]+$ ]] ||
        fail "connect line has no numeric backend_pid: $connect"
    local pid=${BASH_REMATCH[1]}
    # The backend the shim names is the one the server started for psql.
    assert_file_contains "$CLUSTER_LOG" "[$pid] LOG:  connection authorized" "server log names backend $pid"
    # Same conn id on both lines.
    local id_open id_close
    id_open=$(sed -E 's/.* conn=([0-9]+) .*/\1/' <<<"$connect")
    id_close=$(sed -E 's/.* conn=([0-9]+) .*/\1/' <<<"$close")
    assert_eq "$id_open" "$id_close" "conn id of connect and close"
}

# ---- 2. pgbench -C ---------------------------------------------------------------

test_pgbench_connect_per_transaction() {
    sql "drop database if exists fbench" >/dev/null 2>&1
    sql "create database fbench" >/dev/null
    "$PGBENCH" -i -q -s 1 fbench >"$T/init.out" 2>&1 || { cat "$T/init.out"; return 1; }
    local mark
    mark=$(log_mark)
    PQSHIM_LOG=$T/shim.log shimmed "$PGBENCH" -n -C -S -c 2 -j 2 -t 20 fbench >"$T/out" 2>"$T/err" ||
        { cat "$T/out" "$T/err"; return 1; }
    assert_file_contains "$T/out" "number of transactions actually processed: 40/40" "pgbench ran every transaction"
    local server connects closes
    server=$(authorized_since "$mark" fbench)
    connects=$(events "$T/shim.log" connect)
    closes=$(events "$T/shim.log" close)
    assert_ge 40 "$server" "server connections (one per transaction at least)"
    assert_eq "$server" "$connects" "connect lines = server connections"
    assert_eq "$server" "$closes" "close lines = server connections"
    assert_eq "$closes" "$(matching "$T/shim.log" ' event=close .*reason=finish ')" "every close is a finish"
    assert_eq 0 "$(matching "$T/shim.log" ': (error|warn) ')" "no error or warn lines"
    sql "drop database fbench" >/dev/null
}

# ---- 3. psycopg2 (extension module: libpq loaded RTLD_LOCAL) -----------------------

test_psycopg2_sync_and_async() {
    local mark
    mark=$(log_mark)
    PQSHIM_LOG=$T/shim.log shimmed "$PYTHON" "$HELPERS/foundation_psycopg2.py" >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err"; return 1; }
    assert_eq ok "$(cat "$T/out")" "script output"
    assert_eq "" "$(cat "$T/err")" "script stderr"
    assert_eq 4 "$(authorized_since "$mark")" "server connections"
    assert_eq 4 "$(events "$T/shim.log" connect)" "connect lines (3 sync + 1 async)"
    assert_eq 4 "$(matching "$T/shim.log" ' event=close .*reason=finish ')" "close lines"
    assert_eq 8 "$(wc -l <"$T/shim.log")" "log lines in all"
}

# ---- 4. psycopg 3, pure-Python implementation (ctypes + dlsym) ----------------------

test_psycopg3_python_impl() {
    local mark
    mark=$(log_mark)
    PSYCOPG_IMPL=python PQSHIM_LOG=$T/shim.log shimmed "$PYTHON" "$HELPERS/foundation_psycopg3.py" >"$T/out" 2>"$T/err" ||
        { cat "$T/out" "$T/err"; return 1; }
    assert_eq "ok python" "$(cat "$T/out")" "script output"
    assert_eq "" "$(cat "$T/err")" "script stderr"
    assert_eq 3 "$(authorized_since "$mark")" "server connections"
    assert_eq 3 "$(events "$T/shim.log" connect)" "connect lines"
    assert_eq 3 "$(matching "$T/shim.log" ' event=close .*reason=finish ')" "close lines"
    assert_eq 6 "$(wc -l <"$T/shim.log")" "log lines in all"
}

# ---- 5. every entry point, one user call each ---------------------------------------

test_each_entry_point_counted_once() {
    local mark
    mark=$(log_mark)
    PQSHIM_LOG=$T/shim.log shimmed "$TESTBIN/connect_kinds" >"$T/out" 2>"$T/err" ||
        { cat "$T/out" "$T/err"; return 1; }
    assert_eq "" "$(cat "$T/err")" "client stderr"
    assert_eq 7 "$(matching "$T/out" ': select 1 ok ')" "queries that worked (5 + 2 after the resets)"
    assert_file_contains "$T/out" "done" "client finished"
    # 5 connects + 2 resets (each a close and a new connect).
    assert_eq 7 "$(authorized_since "$mark")" "server connections"
    assert_eq 7 "$(events "$T/shim.log" connect)" "connect lines"
    assert_eq 7 "$(events "$T/shim.log" close)" "close lines"
    assert_eq 5 "$(matching "$T/shim.log" ' event=close .*reason=finish ')" "closes by PQfinish"
    assert_eq 2 "$(matching "$T/shim.log" ' event=close .*reason=reset ')" "closes by a reset"
    assert_eq 14 "$(wc -l <"$T/shim.log")" "log lines in all"
    # Every connection is named after the same target.
    assert_eq 14 "$(grep -cF " target=postgres@$PGHOST:$PGPORT/postgres " "$T/shim.log")" "target on every line"
}

# ---- 6. pings are not connections ---------------------------------------------------

test_ping_not_counted() {
    PQSHIM_LOG=$T/info.log shimmed "$PG_BIN/pg_isready" >"$T/out" 2>&1 || { cat "$T/out"; return 1; }
    assert_file_contains "$T/out" "accepting connections" "pg_isready"
    PQSHIM_LOG=$T/info.log shimmed "$TESTBIN/ping_kinds" >"$T/out2" 2>&1
    assert_eq "PQping=0 PQpingParams=0" "$(cat "$T/out2")" "ping results"
    assert_eq 0 "$(lines "$T/info.log")" "log lines at info level"

    PQSHIM_LOG_LEVEL=debug PQSHIM_LOG=$T/debug.log shimmed "$PG_BIN/pg_isready" >/dev/null
    PQSHIM_LOG_LEVEL=debug PQSHIM_LOG=$T/debug.log shimmed "$TESTBIN/ping_kinds" >/dev/null
    PQSHIM_LOG_LEVEL=debug PQSHIM_LOG=$T/debug.log shimmed "$TESTBIN/ping_kinds" \
        "host=127.0.0.1 port=1" >"$T/out3"
    assert_eq "PQping=2 PQpingParams=2" "$(cat "$T/out3")" "ping results, nothing listening"
    assert_eq 3 "$(matching "$T/debug.log" '^pqshim\[[0-9]+\]: debug event=ping result=0$')" "ping lines, server up"
    assert_eq 2 "$(matching "$T/debug.log" '^pqshim\[[0-9]+\]: debug event=ping result=2$')" "ping lines, refused"
    assert_eq 5 "$(wc -l <"$T/debug.log")" "log lines at debug level"
    assert_eq 0 "$(events "$T/debug.log" connect)" "connect lines"
    assert_eq 0 "$(events "$T/debug.log" connect_failed)" "connect_failed lines"
    assert_eq 0 "$(events "$T/debug.log" close)" "close lines"
}

# ---- 7. invalid configuration -------------------------------------------------------

# check_invalid VAR VALUE USING WORD...: one error line naming VAR, VALUE, the
# accepted WORDs and the default in use; psql still works.
check_invalid() {
    local var=$1 value=$2 using=$3 log="$T/$1.log"
    shift 3
    PQSHIM_LOG=$log shimmed env "$var=$value" "$PSQL" -X -A -t -c 'select 1' \
        >"$T/out" 2>"$T/err" || { echo "$var=$value: psql failed: $(cat "$T/err")" >&2; return 1; }
    assert_eq 1 "$(cat "$T/out")" "$var=$value: psql prints the result"
    assert_eq "" "$(cat "$T/err")" "$var=$value: psql stderr"
    assert_eq 1 "$(matching "$log" ': (error|warn) ')" "$var=$value: error and warn lines"
    local line
    line=$(grep -E ': (error|warn) ' "$log")
    assert_contains "$line" "error event=config_invalid variable=$var value=$value accepted=\"" "$var=$value"
    assert_contains "$line" " using=$using" "$var=$value: default in use"
    local accepted=${line#*accepted=\"}
    accepted=${accepted%%\"*}
    local word
    for word in "$@"; do
        assert_contains "$accepted" "$word" "$var=$value: accepted values"
    done
    assert_eq 1 "$(events "$log" connect)" "$var=$value: connect lines"
    assert_eq 1 "$(events "$log" close)" "$var=$value: close lines"
}

test_invalid_configuration_reported_once() {
    check_invalid PQSHIM_POLICY bogus null null capped
    check_invalid PQSHIM_LOG_LEVEL loud info error warn info debug
    check_invalid PQSHIM_LOG_FORMAT xml text text json
    check_invalid PQSHIM_POOL_SIZE -1 5 0 10000
    check_invalid PQSHIM_MAX_OVERFLOW ten 10 0 10000
    check_invalid PQSHIM_POOL_TIMEOUT soon 30 seconds
    check_invalid PQSHIM_RESET sometimes discard discard rollback none
    check_invalid PQSHIM_PRE_PING maybe on on off always

    # A relative log path: the error (and the rest) go to stderr.
    PQSHIM_LOG=relative.log psql_one
    assert_eq 1 "$(cat "$T/out")" "relative log path: psql prints the result"
    assert_file_contains "$T/err" "error event=config_invalid variable=PQSHIM_LOG value=relative.log accepted=\"" "relative log path"
    assert_eq 1 "$(matching "$T/err" ': (error|warn) ')" "relative log path: error lines"
    assert_file_contains "$T/err" "absolute" "relative log path: accepted values"
    assert_file_contains "$T/err" "using=stderr" "relative log path: default in use"
    assert_eq 1 "$(events "$T/err" connect)" "relative log path: connect lines on stderr"
    [ ! -e "$T/relative.log" ] || fail "a relative log file was created"

    # An unknown variable: one warning naming it.
    PQSHIM_FOO=bar PQSHIM_LOG=$T/foo.log psql_one
    assert_eq 1 "$(cat "$T/out")" "unknown variable: psql prints the result"
    assert_eq "" "$(cat "$T/err")" "unknown variable: psql stderr"
    assert_eq 1 "$(matching "$T/foo.log" ': (error|warn) ')" "unknown variable: error and warn lines"
    assert_eq 1 "$(matching "$T/foo.log" '^pqshim\[[0-9]+\]: warn event=config_unknown variable=PQSHIM_FOO ')" "unknown variable line"
}

# ---- 8. log destinations, formats, levels; passwords ---------------------------------

test_log_destinations_and_formats() {
    # A file: every line there, none on stderr; private to the user.
    PQSHIM_LOG=$T/file.log psql_one
    assert_eq 1 "$(cat "$T/out")" "file: psql output"
    assert_eq "" "$(cat "$T/err")" "file: stderr"
    assert_eq 2 "$(wc -l <"$T/file.log")" "file: lines"
    assert_eq 600 "$(stat -c %a "$T/file.log")" "file: mode"

    # The default: stderr.
    psql_one
    assert_eq 1 "$(cat "$T/out")" "stderr: psql output"
    assert_eq 1 "$(events "$T/err" connect)" "stderr: connect lines"
    assert_eq 1 "$(events "$T/err" close)" "stderr: close lines"

    # none: nothing anywhere.
    local before
    before=$(ls "$T" | sort)
    PQSHIM_LOG=none PQSHIM_LOG_LEVEL=debug psql_one
    assert_eq 1 "$(cat "$T/out")" "none: psql output"
    assert_eq "" "$(cat "$T/err")" "none: stderr"
    assert_eq "$before" "$(ls "$T" | sort)" "none: files in the working directory"

    # JSON: every line is an object with the common keys.
    PQSHIM_LOG_FORMAT=json PQSHIM_LOG_LEVEL=debug PQSHIM_LOG=$T/json.log psql_one
    assert_eq 1 "$(cat "$T/out")" "json: psql output"
    "$PYTHON" "$HELPERS/check_json_log.py" "$T/json.log"

    # warn: connects and closes are info, so nothing.
    PQSHIM_LOG_LEVEL=warn PQSHIM_LOG=$T/warn.log psql_one
    assert_eq 1 "$(cat "$T/out")" "warn: psql output"
    assert_eq 0 "$(events "$T/warn.log" connect)" "warn: connect lines"
    assert_eq 0 "$(lines "$T/warn.log")" "warn: lines"
}

test_password_never_logged() {
    export PGPASSWORD=hunter3-secret
    local fmt
    for fmt in text json; do
        PQSHIM_LOG_FORMAT=$fmt PQSHIM_LOG_LEVEL=debug PQSHIM_LOG=$T/$fmt.log shimmed \
            "$PSQL" -X -A -t -c 'select 1' "password=hunter2-secret dbname=postgres" >"$T/out" 2>"$T/err"
        assert_eq 1 "$(cat "$T/out")" "$fmt: psql output"
        assert_eq 1 "$(matching "$T/$fmt.log" '"?event"?[=:]"?connect[" ]')" "$fmt: connect lines"
        # Refused: a connect_failed line with libpq's message.
        PQSHIM_LOG_FORMAT=$fmt PQSHIM_LOG_LEVEL=debug PQSHIM_LOG=$T/$fmt.log shimmed \
            "$PSQL" -X -A -t -c 'select 1' "host=127.0.0.1 port=1 password=hunter2-secret" \
            >"$T/out" 2>"$T/err" && fail "$fmt: psql connected to port 1"
        assert_eq 1 "$(matching "$T/$fmt.log" 'connect_failed')" "$fmt: connect_failed lines"
        assert_file_contains "$T/$fmt.log" "127.0.0.1" "$fmt: connect_failed names the server"
    done
    # The same on stderr.
    PQSHIM_LOG_LEVEL=debug shimmed "$PSQL" -X -A -t -c 'select 1' \
        "password=hunter2-secret dbname=postgres" >"$T/out" 2>"$T/stderr.log"
    PQSHIM_LOG_LEVEL=debug shimmed "$PSQL" -X -A -t -c 'select 1' \
        "host=127.0.0.1 port=1 password=hunter2-secret" >>"$T/out" 2>>"$T/stderr.log" || true
    assert_eq 1 "$(events "$T/stderr.log" connect)" "stderr: connect lines"
    assert_eq 1 "$(events "$T/stderr.log" connect_failed)" "stderr: connect_failed lines"
    local f
    for f in "$T/text.log" "$T/json.log" "$T/stderr.log"; do
        [ -s "$f" ] || fail "$f is empty"
        ! grep -q hunter "$f" || fail "a password appears in $f: $(grep hunter "$f")"
    done
}

# ---- 9. no cost where unused --------------------------------------------------------

# trace OUT_FILE CMD...: the file, socket and thread system calls of CMD and
# its children, one process after another, with addresses and returned
# numbers (descriptors, pids) blanked out.
trace() {
    local out=$1 dir
    shift
    dir=$(mktemp -d "$T/strace.XXXXXX")
    strace -f -ff -qq -o "$dir/t" -e trace=openat,open,socket,connect,clone,clone3 \
        -e signal=none "$@" >/dev/null 2>>"$T/cmd.err" || true
    : >"$out"
    local f
    for f in $(cd "$dir" && ls | sort -t. -k2 -n); do
        sed -E 's/0x[0-9a-f]+/0xX/g; s/ = [0-9]+$/ = N/' "$dir/$f" >>"$out"
    done
}

# compare_traces NAME CMD...: CMD traced without and with the shim preloaded
# (with only the sanitizer runtimes, if any, as the baseline). The only
# difference allowed is the opening of the shim itself.
compare_traces() {
    local name=$1 base=${SAN_PRELOAD% }
    shift
    : >"$T/cmd.err"
    if [ -n "$base" ]; then
        trace "$T/$name.base" env LD_PRELOAD="$base" "$@"
    else
        trace "$T/$name.base" env -u LD_PRELOAD "$@"
    fi
    # env is traced in both runs alike; the preload reaches the command only.
    trace "$T/$name.shim" env LD_PRELOAD="$SHIM_PRELOAD" "$@"
    assert_eq "" "$(cat "$T/cmd.err")" "$name: stderr"
    [ -s "$T/$name.base" ] || fail "$name: strace recorded nothing"
    assert_ge 1 "$(matching "$T/$name.shim" 'libpqshim\.so')" "$name: the shim is opened"
    ! grep -E 'libpq\.so' "$T/$name.shim" || fail "$name: libpq opened with the shim preloaded"
    grep -v 'libpqshim\.so' "$T/$name.shim" >"$T/$name.rest" || true
    if ! diff "$T/$name.base" "$T/$name.rest" >"$T/$name.diff"; then
        ! grep -E '^>.*(socket\(|connect\(|clone3|CLONE_THREAD)' "$T/$name.diff" ||
            fail "$name: a socket or a thread with the shim preloaded"
        fail "$name: the shim changed what the process does: $(cat "$T/$name.diff")"
    fi
}

test_unused_costs_nothing() {
    command -v strace >/dev/null || fail "strace is not installed"
    if [ -n "${TEST_SANITIZER:-}" ]; then
        # An instrumented shim makes the sanitizer runtime initialise (its
        # own /proc/self/maps reads; under TSan a temp file and a thread, and
        # bash crashes under the bare TSan runtime): only what would be the
        # shim's own doing is checked.
        trace "$T/tsan.shim" env LD_PRELOAD="$SHIM_PRELOAD" /bin/true
        assert_ge 1 "$(matching "$T/tsan.shim" 'libpqshim\.so')" "the shim is opened"
        ! grep -E 'libpq\.so|socket\(|connect\(' "$T/tsan.shim" ||
            fail "libpq or a socket with the shim preloaded"
        return 0
    fi
    compare_traces true /bin/true
    compare_traces bash /bin/bash -c 'ls / >/dev/null'
}

# ---- 10. exported symbols ------------------------------------------------------------

test_exported_symbols_allowlist() {
    local want got
    want=$(printf '%s\n' PQconnectdb PQconnectdbParams PQsetdbLogin PQconnectStart \
        PQconnectStartParams PQconnectPoll PQfinish PQreset PQresetStart PQresetPoll \
        PQping PQpingParams PQregisterEventProc PQerrorMessage PQgetCancel PQcancel \
        PQfreeCancel PQrequestCancel PQexitPipelineMode PQtrace PQcancelCreate \
        PQsetNoticeProcessor PQsetNoticeReceiver PQhost PQport PQconninfo dlsym dlopen | sort)
    got=$(nm -D --defined-only "$SHIM" | awk 'NF == 3 { print $3 }' | sed 's/@.*//' | sort)
    assert_eq "$want" "$got" "symbols exported by $SHIM"
    # The hooked rows of the list of libpq functions are what is exported.
    local hooked
    hooked=$(printf '#include "libpq_functions.h"\n#define ROW(c, k, r, name, p, a) HOOKED=name\nLIBPQ_HOOKED(ROW, _)\n' |
        cc -E -P -I"$(pg_config --includedir)" -I"$ROOT/shim" -x c - | grep -o 'HOOKED=PQ[A-Za-z]*' | sed 's/HOOKED=//')
    assert_eq "$want" "$(printf '%s\n' $hooked dlsym dlopen | sort)" "the hooked rows of shim/libpq_functions.h"
    # Hooks of newer libpq functions are offered through a libpq handle only
    # when that libpq has them: a program probing for libpq 17's
    # PQcancelCreate must not find it in an older libpq.
    local lib has
    lib=$("$PYTHON" -c 'import ctypes.util; print(ctypes.util.find_library("pq"))')
    has=$(shimmed "$PYTHON" -c 'import ctypes, sys; l = ctypes.CDLL(sys.argv[1]); print(hasattr(l, "PQcancelCreate"), hasattr(l, "PQcancel"))' "$lib")
    if nm -D --defined-only "$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')" | grep -qw PQcancelCreate; then
        assert_eq "True True" "$has" "PQcancelCreate and PQcancel through a libpq 17 handle"
    else
        assert_eq "False True" "$has" "PQcancelCreate and PQcancel through a libpq handle without PQcancelCreate"
    fi
    ! readelf -d "$SHIM" | grep NEEDED | grep -q 'libpq' ||
        fail "$SHIM depends on libpq: $(readelf -d "$SHIM" | grep NEEDED)"
}

# ---- 11. dlsym(RTLD_NEXT) from another preloaded library -------------------------------

test_dlsym_rtld_next_preserved() {
    [ -f "$TESTBIN/libnextprobe.so" ] || fail "libnextprobe.so not built (make test-build)"
    LD_PRELOAD="$SHIM_PRELOAD $TESTBIN/libnextprobe.so" NEXTPROBE_REPORT=1 \
        PQSHIM_LOG=$T/shim.log "$PSQL" -X -A -t -c 'select 1' >"$T/out" 2>"$T/err" ||
        { cat "$T/out" "$T/err"; return 1; }
    assert_eq 1 "$(cat "$T/out")" "psql output"
    assert_eq 1 "$(matching "$T/err" '^nextprobe: getenv calls=[1-9][0-9]*$')" "the wrapped getenv was used"
    assert_eq 1 "$(wc -l <"$T/err")" "stderr lines"
    assert_eq 1 "$(events "$T/shim.log" connect)" "connect lines"
    assert_eq 1 "$(events "$T/shim.log" close)" "close lines"
}

# ---- 12. connections the shim did not create ------------------------------------------

test_foreign_connections_pass_through() {
    PQSHIM_LOG=$T/shim.log PQSHIM_LOG_LEVEL=debug shimmed "$TESTBIN/foreign" \
        "host=127.0.0.1 port=1 connect_timeout=5" >"$T/out" 2>"$T/err" ||
        { cat "$T/out" "$T/err"; return 1; }
    assert_eq "" "$(cat "$T/err")" "client stderr"
    assert_eq 4 "$(matching "$T/out" ': bad \(')" "failed connections reported by libpq"
    assert_file_contains "$T/out" "PQconnectdb bad option: bad (invalid connection option" "libpq's own message"
    assert_file_contains "$T/out" "done" "client finished"
    assert_eq 4 "$(events "$T/shim.log" connect_failed)" "connect_failed lines"
    assert_eq 4 "$(wc -l <"$T/shim.log")" "log lines in all"

    # psql against a refused port: its message, one connect_failed, nothing else.
    PQSHIM_LOG=$T/psql.log PQSHIM_LOG_LEVEL=debug shimmed "$PSQL" -X -A -t -c 'select 1' \
        "host=127.0.0.1 port=1" >"$T/out" 2>"$T/err" && fail "psql connected to port 1"
    assert_file_contains "$T/err" "Connection refused" "psql's error"
    assert_eq 1 "$(events "$T/psql.log" connect_failed)" "psql: connect_failed lines"
    assert_eq 1 "$(wc -l <"$T/psql.log")" "psql: log lines in all"
    assert_file_contains "$T/psql.log" "target=postgres@127.0.0.1:1/postgres" "psql: target"
}

# ---- 13. Python threads ---------------------------------------------------------------

test_psycopg2_threads() {
    local mark
    mark=$(log_mark)
    PQSHIM_LOG=$T/shim.log shimmed "$PYTHON" "$HELPERS/foundation_threads.py" >"$T/out" 2>"$T/err" ||
        { cat "$T/out" "$T/err"; return 1; }
    assert_eq "done 160 errors 0" "$(cat "$T/out")" "script output"
    assert_eq "" "$(cat "$T/err")" "script stderr"
    assert_eq 160 "$(authorized_since "$mark")" "server connections"
    assert_eq 160 "$(events "$T/shim.log" connect)" "connect lines"
    assert_eq 160 "$(matching "$T/shim.log" ' event=close .*reason=finish ')" "close lines"
    assert_eq 320 "$(wc -l <"$T/shim.log")" "log lines in all"
    # Every connection has its own id, opened once and closed once.
    assert_eq 160 "$(grep ' event=connect ' "$T/shim.log" | sed -E 's/.* conn=([0-9]+) .*/\1/' | sort -u | wc -l)" "distinct conn ids"
}
