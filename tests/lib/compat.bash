# shellcheck shell=bash
# Helpers for the compatibility matrix: unmodified real clients, each run
# under both policies. Sourced (after common.sh) by tests/integration/
# 60-compat.sh, whose rows make check runs, and by tests/compat.sh, which
# runs those rows and the slower ones and writes doc/compatibility.md's matrix.
#
# A row is a function row_ID POLICY (null or capped) that runs in its own
# subshell with set -e, cwd = $T. It fails through the assert_* helpers. It
# may record what it measured (compat_measure: shown in the policy's cell)
# and what a user must know (compat_note: shown in the notes column), or
# skip because its program is not installed (compat_skip).

COMPAT_LIB="$ROOT/tests/lib"

# The state a session leaves behind, and what a clean session shows. Every
# row that can run SQL sets all of it before it disconnects and checks, on
# its next connect, that none of it is there: under the capped policy that
# next connect is usually the same server session, reset.
export COMPAT_DIRTY="set compat.bleed = 'dirty';create temp table bleed (x int);prepare bleedstmt as select 1;set role pg_read_all_data"
export COMPAT_CHECK="select coalesce(current_setting('compat.bleed', true), '') || '|' || (select count(*) from pg_prepared_statements where name = 'bleedstmt') || '|' || (to_regclass('pg_temp.bleed') is null)::text || '|' || current_user"
export COMPAT_CLEAN="|0|true|postgres"

# ---- recording -----------------------------------------------------------------

# compat_skip REASON: the row's program is missing; the row passes, and the
# runner's output says it was skipped.
compat_skip() {
    echo "$1" >>"$T/compat.skip"
    skip_test "$1"
}

compat_measure() {  # TEXT: what this policy's run showed (the matrix cell)
    echo "$1" >>"$T/compat.measure"
}

compat_verdict() {  # TEXT: the cell's verdict when the row passed, instead of "pass"
    echo "$1" >"$T/compat.verdict"
}

compat_note() {  # TEXT: something users of the program must know
    echo "$1" >>"$T/compat.note"
}

# need_cmd COMMAND PACKAGE: true if COMMAND exists, else skip the row.
need_cmd() {
    command -v "$1" >/dev/null 2>&1 && return 0
    compat_skip "$1 not installed (Debian package $2; make compat installs it)"
    return 1
}

# need_run PACKAGE WHAT CMD...: true if CMD succeeds, else skip the row.
need_run() {
    local pkg=$1 what=$2
    shift 2
    "$@" >/dev/null 2>&1 && return 0
    compat_skip "$what not installed (Debian package $pkg; make compat installs it)"
    return 1
}

# ---- running through the shim --------------------------------------------------

# through POLICY CMD...: CMD with the shim preloaded under POLICY, every
# event (debug level) logged to $T/shim.log; killed after 120 s.
through() {
    local policy=$1
    shift
    PQSHIM_POLICY=$policy PQSHIM_LOG="$T/shim.log" PQSHIM_LOG_LEVEL=debug \
        shimmed timeout -k 5 120 "$@"
}

# run_ok WHAT CMD...: run CMD, stdout to $T/out, stderr to $T/err; fail with
# both shown when it exits non-zero.
run_ok() {
    local what=$1 rc=0
    shift
    "$@" >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" = 0 ] || fail "$what exited with $rc: $(head -c 3000 "$T/out") $(head -c 3000 "$T/err")"
}

# n_events EVENT [FILE]: lines of EVENT in the shim log (0 when none).
n_events() {
    local n
    n=$(count_events "${2:-$T/shim.log}" "$1")
    echo "${n:-0}"
}

n_matching() {  # REGEX [FILE]
    local n
    n=$(grep -cE -- "$1" "${2:-$T/shim.log}" 2>/dev/null || true)
    echo "${n:-0}"
}

server_mark() {
    wc -l <"$CLUSTER_LOG"
}

# server_since MARK: connections the server authorized after MARK.
server_since() {
    local n
    n=$(tail -n +"$(($1 + 1))" "$CLUSTER_LOG" | grep -c "connection authorized: " || true)
    echo "${n:-0}"
}

# check_shim POLICY MIN_CONNECTS [reuse|noreuse [LABEL]]: the program went
# through the shim: at least MIN_CONNECTS connects of the program (server
# connections under null, checkouts under capped), no error line, no warn
# line other than an expected failed first attempt. Under capped with
# "reuse" (the default), reuse happened: fewer server connections than
# connects. Records the counts (after LABEL) as the cell's measure.
check_shim() {
    local policy=$1 min=$2 reuse=${3:-reuse} label=${4:+$4: }
    local connects checkouts reused
    connects=$(n_events connect)
    checkouts=$(n_events checkout)
    reused=$(n_matching ' event=checkout .* reused=1 ')
    assert_eq 0 "$(n_matching ': error ')" "error lines in the shim log: $(grep ': error ' "$T/shim.log" | head -3)"
    assert_eq 0 "$(n_matching ': warn event=(config|libpq|timeout|deadlock|retry)')" "warn lines in the shim log: $(grep ': warn ' "$T/shim.log" | head -3)"
    if [ "$policy" = null ]; then
        assert_ge "$min" "$connects" "connections counted by the shim (null policy)"
        assert_eq 0 "$checkouts" "checkouts under the null policy"
        compat_measure "$label$connects connects, each a server connection"
        return 0
    fi
    assert_ge "$min" "$checkouts" "connects served by the pool (checkout lines)"
    assert_ge 1 "$connects" "server connections (connect lines)"
    if [ "$reuse" = reuse ]; then
        assert_ge 1 "$reused" "reused checkouts"
        [ "$connects" -lt "$checkouts" ] ||
            fail "no reuse: $connects server connections for $checkouts connects"
    fi
    local s=s
    [ "$connects" != 1 ] || s=""
    compat_measure "$label$checkouts connects, $connects server connection$s"
}

# check_clean_output FILE COUNT: COUNT lines "clean <COMPAT_CLEAN>" in FILE.
check_clean() {
    assert_eq "$2" "$(grep -cxF "clean $COMPAT_CLEAN" "$1" || true)" \
        "sessions that started clean ($(grep -v "clean $COMPAT_CLEAN" "$1" | head -3))"
}

# ---- programs and versions ------------------------------------------------------

# pkg_version PACKAGE...: "package version" for each installed package
# (a name may be a dpkg-query pattern: php*-pgsql is php-pgsql and the
# php8.2-pgsql it depends on).
pkg_version() {
    local p out
    out=$(for p in "$@"; do
        dpkg-query -W -f '${db:Status-Status} ${Package} ${Version}\n' "$p" 2>/dev/null
    done | awk '$1 == "installed" { printf "%s%s %s", (n++ ? ", " : ""), $2, $3 }')
    echo "${out:-not installed}"
}

# Debian packages of the PostgreSQL programs in use (pgbench ships with the
# server package).
PG_MAJOR=$(basename "$(dirname "$PG_BIN")")
PG_CLIENT_PKG="postgresql-client-$PG_MAJOR"
PG_SERVER_PKG="postgresql-$PG_MAJOR"

# The matrix rows: ID|program|Debian packages (for the version column).
# row_ID is defined in 60-compat.sh (make check) or tests/compat.sh (slower).
COMPAT_ROWS=(
    "psql|psql: -c, -f, interactive (pty), \\connect, \\!|$PG_CLIENT_PKG libpq5"
    "psql_password|psql: password prompt and retry (pty)|$PG_CLIENT_PKG"
    "pgbench|pgbench -C and persistent, -M simple/extended/prepared|$PG_SERVER_PKG"
    "pgbench_load|pgbench, 8 clients: every mode, and -C -M prepared through a cap of 4|$PG_SERVER_PKG"
    "pg_dump_restore|pg_dump -Fd -j 2 / pg_restore -j 2|$PG_CLIENT_PKG"
    "pg_isready|pg_isready|$PG_CLIENT_PKG"
    "createdb_dropdb|createdb / dropdb|$PG_CLIENT_PKG"
    "vacuumdb|vacuumdb -j 2|$PG_CLIENT_PKG"
    "vacuumdb_all|vacuumdb -a -j 2 (every database)|$PG_CLIENT_PKG"
    "reindexdb|reindexdb, reindexdb -j 2|$PG_CLIENT_PKG"
    "reindexdb_all|reindexdb -a (every database)|$PG_CLIENT_PKG"
    "pgcli|pgcli (psycopg 3, pure-Python libpq binding)|pgcli python3-psycopg"
    "psycopg2|psycopg2: sync, threads, fork (multiprocessing), async|python3-psycopg2"
    "sqlalchemy_nullpool|SQLAlchemy + psycopg2, NullPool|python3-sqlalchemy"
    "sqlalchemy_queuepool|SQLAlchemy + psycopg2, QueuePool|python3-sqlalchemy"
    "psycopg3|psycopg 3, every implementation installed|python3-psycopg"
    "psycopg_pool|psycopg_pool ConnectionPool (psycopg 3)|python3-psycopg-pool"
    "perl_dbd_pg|Perl DBI + DBD::Pg|libdbd-pg-perl"
    "ruby_pg|Ruby pg|ruby-pg"
    "php_pgsql|PHP pgsql (CLI)|php*-pgsql php*-cli"
    "php_pdo_pgsql|PHP PDO pdo_pgsql (CLI)|php*-pgsql php*-cli"
    "odbc_isql|ODBC: unixODBC isql + psqlODBC|unixodbc odbc-postgresql"
    "odbc_pyodbc|ODBC: pyodbc + psqlODBC, one process|python3-pyodbc odbc-postgresql"
    "private_libpq|private libpq copy (libpq-<hash>.so.5.x, dlopen RTLD_LOCAL)|libpq5"
    "two_libpq_copies|two libpq copies in one process (libpq.so.5 and a renamed copy, one plugin each)|libpq5 patchelf"
)
