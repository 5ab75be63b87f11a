# shellcheck shell=bash
# Compatibility matrix, quick rows: unmodified real clients as Debian ships
# them, each under the null and the capped policy. Each row checks what a
# user would: the output, the exit status, that the program went through the
# shim, and under capped that connections were reused and came back clean.
# A row whose program is not installed is skipped (make compat installs
# them: tests/lib/compat-deps.sh). The slower rows, and the matrix in doc/compatibility.md:
# tests/compat.sh (make compat).

. "$ROOT/tests/lib/compat.bash"

# Rows that create a database or a role drop it when they end.
compat_cleanup_cmds=()
compat_cleanup() {
    local c
    for c in "${compat_cleanup_cmds[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
}
at_end() {  # SHELL-COMMAND
    compat_cleanup_cmds+=("$1")
    trap compat_cleanup EXIT
}

fresh_db() {  # NAME: an empty database, dropped when the row ends
    sql "drop database if exists $1 with (force)" >/dev/null 2>&1
    sql "create database $1" >/dev/null
    at_end "sql 'drop database if exists $1 with (force)'"
}

# ---- psql ------------------------------------------------------------------------

row_psql() {
    local policy=$1
    # -c
    run_ok "psql -c" through "$policy" "$PSQL" -X -A -t -c 'select 40 + 2'
    assert_eq 42 "$(cat "$T/out")" "psql -c output"
    assert_eq "" "$(cat "$T/err")" "psql -c stderr"
    # -f: a script with a temp table, run to the end.
    cat >"$T/script.sql" <<'EOF'
\set ON_ERROR_STOP 1
create temp table t (x int);
insert into t select generate_series(1, 10);
select 'sum ' || sum(x) from t;
EOF
    run_ok "psql -f" through "$policy" "$PSQL" -X -A -t -q -f "$T/script.sql"
    assert_eq "sum 55" "$(cat "$T/out")" "psql -f output"
    # Interactive, through a pseudo-terminal: leave state behind, \connect
    # to another database and back (under capped the first session comes
    # back, reset), run a shell command that itself runs psql with the
    # preload inherited, and go on with the same session.
    cat >"$T/steps" <<EOF
expect postgres=[#>]
send select 'clean ' || x from ($COMPAT_CHECK) s(x);
expect postgres=[#>]
send ${COMPAT_DIRTY};
expect postgres=[#>]
send \\connect template1
expect template1=[#>]
send \\connect postgres
expect postgres=[#>]
send select 'clean ' || x from ($COMPAT_CHECK) s(x);
expect postgres=[#>]
send \\! echo "child-says \$((6 * 7))"; "$PSQL" -X -A -t -P pager=off -c 'select 6 * 7'
expect postgres=[#>]
send select 'parent ' || 40 + 2;
expect postgres=[#>]
send \\q
EOF
    run_ok "interactive psql" through "$policy" "$PYTHON" "$COMPAT_LIB/pty_drive.py" 20 "$T/steps" \
        "$PSQL" -X -A -t -P pager=off
    tr -d '\r' <"$T/out" >"$T/screen"
    check_clean "$T/screen" 2
    assert_file_contains "$T/screen" 'You are now connected to database "template1"' "\\connect template1"
    assert_file_contains "$T/screen" 'You are now connected to database "postgres"' "\\connect postgres"
    assert_file_contains "$T/screen" "child-says 42" "the \\! shell ran"
    assert_eq 1 "$(grep -cx 42 "$T/screen" || true)" "the nested psql's answer"
    assert_file_contains "$T/screen" "parent 42" "the session after \\!"
    # Four psql processes went through the shim (the shell between them did
    # not touch libpq): -c, -f, the interactive one and its child.
    assert_eq 4 "$(sed -E 's/^pqshim\[([0-9]+)\].*/\1/' "$T/shim.log" | sort -u | wc -l)" \
        "processes in the shim log"
    check_shim "$policy" 6
}

test_psql_null() { row_psql null; }
test_psql_capped() { row_psql capped; }

# The password path: psql's first attempt fails with "no password supplied",
# psql asks on the terminal and connects again with the password. Trust
# authentication never asks, so a role that needs a password over TCP gets
# a line of its own at the top of the test cluster's pg_hba.conf.
hba_requires_password() {
    ! "$PSQL" -X -w -h 127.0.0.1 -U compat_pw -c 'select 1' postgres >/dev/null 2>&1
}

row_psql_password() {
    local policy=$1 hba="$CLUSTER_DIR/data/pg_hba.conf"
    if [ ! -w "$hba" ]; then
        compat_skip "the test cluster's pg_hba.conf is not writable"
        return 0
    fi
    cp "$hba" "$T/hba.orig"
    at_end "cat '$T/hba.orig' >'$hba'; sql 'select pg_reload_conf()'; sql 'drop role if exists compat_pw'"
    sql "drop role if exists compat_pw" >/dev/null
    sql "create role compat_pw login password 'sesame-open'" >/dev/null
    { echo "host all compat_pw 127.0.0.1/32 scram-sha-256"; cat "$T/hba.orig"; } >"$hba"
    sql "select pg_reload_conf()" >/dev/null
    wait_until 10 hba_requires_password || fail "the password line of pg_hba.conf never applied"
    cat >"$T/steps" <<EOF
expect Password for user compat_pw:
send sesame-open
expect postgres=>
send select 'user ' || current_user;
expect postgres=>
send \\connect template1
expect template1=>
send \\connect postgres
expect postgres=>
send select 'again ' || current_user;
expect postgres=>
send \\q
EOF
    run_ok "psql asking for a password" through "$policy" "$PYTHON" "$COMPAT_LIB/pty_drive.py" 20 \
        "$T/steps" "$PSQL" -X -A -t -P pager=off -h 127.0.0.1 -U compat_pw postgres
    tr -d '\r' <"$T/out" >"$T/screen"
    assert_file_contains "$T/screen" "user compat_pw" "connected as compat_pw"
    assert_file_contains "$T/screen" "again compat_pw" "\\connect kept the password"
    ! grep -q sesame "$T/screen" || fail "the password was echoed"
    ! grep -q sesame "$T/shim.log" || fail "the password is in the shim log"
    # The first attempt failed as it does without the shim.
    assert_eq 1 "$(n_events connect_failed)" "failed first attempt"
    assert_file_contains "$T/shim.log" "no password supplied" "why the first attempt failed"
    check_shim "$policy" 3
}

test_psql_password_null() { row_psql_password null; }
test_psql_password_capped() { row_psql_password capped; }

# ---- pgbench ----------------------------------------------------------------------

# pgbench_runs POLICY DB CLIENTS TRANSACTIONS: -C and persistent, in each
# query mode; every transaction processed, no error.
pgbench_runs() {
    local policy=$1 db=$2 clients=$3 tx=$4 mode cflag out
    for mode in simple extended prepared; do
        for cflag in -C ""; do
            out="$T/pgbench-$mode${cflag:+-C}"
            through "$policy" "$PGBENCH" -n $cflag -S -M "$mode" -c "$clients" -j 2 -t "$tx" "$db" \
                >"$out.out" 2>"$out.err" ||
                fail "pgbench $cflag -M $mode: $(cat "$out.out" "$out.err")"
            assert_file_contains "$out.out" \
                "number of transactions actually processed: $((clients * tx))/$((clients * tx))" \
                "pgbench $cflag -M $mode"
            # A reused session with the previous user's prepared statements
            # would say "already exists".
            ! grep -qiE 'already exists|error' "$out.err" ||
                fail "pgbench $cflag -M $mode: $(head -5 "$out.err")"
        done
    done
}

row_pgbench() {
    local policy=$1
    fresh_db cbench
    "$PGBENCH" -i -q -s 1 cbench >"$T/init.out" 2>&1 || fail "pgbench -i: $(cat "$T/init.out")"
    pgbench_runs "$policy" cbench 2 5
    check_shim "$policy" 30
}

test_pgbench_null() { row_pgbench null; }
test_pgbench_capped() { row_pgbench capped; }

# ---- pg_isready, createdb, dropdb, vacuumdb, reindexdb -------------------------------

row_pg_isready() {
    local policy=$1 rc=0
    run_ok "pg_isready" through "$policy" "$PG_BIN/pg_isready"
    assert_contains "$(cat "$T/out")" "accepting connections" "pg_isready output"
    through "$policy" "$PG_BIN/pg_isready" -h 127.0.0.1 -p 1 >"$T/out2" 2>&1 || rc=$?
    assert_eq 2 "$rc" "pg_isready exit status, nothing listening"
    assert_contains "$(cat "$T/out2")" "no response" "pg_isready output, nothing listening"
    # Pings are seen, never counted as connections nor pooled.
    assert_eq 2 "$(n_events ping)" "ping lines"
    assert_eq 0 "$(n_events connect)" "connect lines"
    assert_eq 0 "$(n_events checkout)" "checkout lines"
    compat_measure "2 pings, no connection counted"
}

test_pg_isready_null() { row_pg_isready null; }
test_pg_isready_capped() { row_pg_isready capped; }

row_createdb_dropdb() {
    local policy=$1
    at_end "sql 'drop database if exists compat_cd'"
    sql "drop database if exists compat_cd" >/dev/null
    run_ok "createdb" through "$policy" "$PG_BIN/createdb" compat_cd
    assert_eq 1 "$(sql "select count(*) from pg_database where datname = 'compat_cd'")" "database created"
    run_ok "dropdb" through "$policy" "$PG_BIN/dropdb" compat_cd
    assert_eq 0 "$(sql "select count(*) from pg_database where datname = 'compat_cd'")" "database dropped"
    check_shim "$policy" 2 noreuse
    [ "$policy" = null ] ||
        compat_note "createdb, dropdb: one connection per process, so nothing to reuse"
}

test_createdb_dropdb_null() { row_createdb_dropdb null; }
test_createdb_dropdb_capped() { row_createdb_dropdb capped; }

make_tables_db() {  # NAME: a database with a few indexed tables
    fresh_db "$1"
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$1" >/dev/null <<'EOF'
create table a (id int primary key, v text);
create table b (id int primary key, v text);
create table c (id int primary key, v text);
insert into a select g, md5(g::text) from generate_series(1, 2000) g;
insert into b select * from a;
insert into c select * from a;
create index on a (v);
EOF
}

row_vacuumdb() {
    local policy=$1 rc=0
    make_tables_db cvac
    run_ok "vacuumdb -j 2" through "$policy" "$PG_BIN/vacuumdb" -j 2 -z cvac
    assert_contains "$(cat "$T/out")" 'vacuuming database "cvac"' "vacuumdb output"
    check_shim "$policy" 2 noreuse
    if [ "$policy" = capped ]; then
        # -j N holds N connections in one thread: a cap below N cannot work,
        # and the shim says so at once instead of waiting.
        PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_LOG="$T/small.log" PQSHIM_POLICY=capped \
            shimmed "$PG_BIN/vacuumdb" -j 2 cvac >"$T/small.out" 2>&1 || rc=$?
        assert_eq 1 "$rc" "vacuumdb -j 2 with a cap of 1: exit status"
        assert_file_contains "$T/small.out" "pqshim: this thread already holds all 1 connections" \
            "vacuumdb -j 2 with a cap of 1: the message"
        compat_note "-j N holds N connections in one thread: the cap (size + overflow) must be at least N; below that vacuumdb fails at once with pqshim's self-deadlock message"
    fi
}

test_vacuumdb_null() { row_vacuumdb null; }
test_vacuumdb_capped() { row_vacuumdb capped; }

row_reindexdb() {
    local policy=$1
    make_tables_db creidx
    run_ok "reindexdb" through "$policy" "$PG_BIN/reindexdb" creidx
    run_ok "reindexdb -j 2" through "$policy" "$PG_BIN/reindexdb" -j 2 creidx
    assert_eq 4 "$("$PSQL" -X -A -t -d creidx -c "select count(*) from pg_indexes where schemaname = 'public'")" \
        "indexes after the reindex"
    assert_eq 2000 "$("$PSQL" -X -q -A -t -d creidx -c "set enable_seqscan = off; select count(*) from a where v > ''")" \
        "an index scan after the reindex"
    check_shim "$policy" 3 noreuse
    [ "$policy" = null ] ||
        compat_note "-j N, as for vacuumdb, needs a cap of at least N"
}

test_reindexdb_null() { row_reindexdb null; }
test_reindexdb_capped() { row_reindexdb capped; }

# ---- Python ---------------------------------------------------------------------

# tests/helpers/compat_session.py: one user's session, the same in every
# Python row (the rows' programs import it).

row_psycopg2() {
    local policy=$1
    sql "drop role if exists compat_a" >/dev/null
    sql "drop role if exists compat_b" >/dev/null
    sql "create role compat_a login; create role compat_b login" >/dev/null
    at_end "sql 'drop role if exists compat_a'; sql 'drop role if exists compat_b'"
    # The children start threads (the capped pool's janitor) after a fork of
    # a process with threads, which ThreadSanitizer refuses by default.
    [ "${TEST_SANITIZER:-}" != tsan ] || export TSAN_OPTIONS="$TSAN_OPTIONS:die_after_fork=0"
    run_ok "psycopg2 script" through "$policy" "$PYTHON" "$HELPERS/compat_psycopg2.py"
    assert_eq "" "$(cat "$T/err")" "script stderr"
    check_clean "$T/out" 5
    assert_file_contains "$T/out" "done" "script finished"
    # Each user's connections have their own target.
    assert_ge 1 "$(n_matching "event=connect target=compat_a@")" "connections as compat_a"
    assert_ge 1 "$(n_matching "event=connect target=compat_b@")" "connections as compat_b"
    # 5 sync + 6 users + 20 threads + 2 before the fork + 6 children + 1 + 2 async
    check_shim "$policy" 42
}

test_psycopg2_null() { row_psycopg2 null; }
test_psycopg2_capped() { row_psycopg2 capped; }

# SQLAlchemy on psycopg2. NullPool closes every connection it hands back, so
# under capped the shim does the pooling. QueuePool keeps its connections:
# the shim then only sees the app pool's own connects.
row_sqlalchemy_nullpool() {
    local policy=$1
    need_run python3-sqlalchemy "SQLAlchemy" "$PYTHON" -c 'import sqlalchemy' || return 0
    run_ok "SQLAlchemy NullPool" through "$policy" "$PYTHON" "$HELPERS/compat_sqlalchemy_nullpool.py"
    assert_eq "" "$(cat "$T/err")" "script stderr"
    check_clean "$T/out" 5
    assert_file_contains "$T/out" "done" "script finished"
    check_shim "$policy" 25
    [ "$policy" = null ] ||
        compat_note "NullPool opens and closes a connection per checkout: pqshim does the pooling (the recommended combination)"
}

test_sqlalchemy_nullpool_null() { row_sqlalchemy_nullpool null; }
test_sqlalchemy_nullpool_capped() { row_sqlalchemy_nullpool capped; }

row_sqlalchemy_queuepool() {
    local policy=$1
    need_run python3-sqlalchemy "SQLAlchemy" "$PYTHON" -c 'import sqlalchemy' || return 0
    # The shim's cap (2) fits the app pool (pool_size 2, max_overflow 0).
    PQSHIM_POOL_SIZE=2 PQSHIM_MAX_OVERFLOW=0 run_ok "SQLAlchemy QueuePool" \
        through "$policy" "$PYTHON" "$HELPERS/compat_sqlalchemy_queuepool.py" 2
    assert_eq "errors 0" "$(cat "$T/out")" "QueuePool of 2, shim cap 2"
    # 20 checkouts of the app pool, at most 2 connects reach libpq.
    assert_le 2 "$(n_events connect)" "server connections"
    check_shim "$policy" 2 noreuse
    if [ "$policy" = capped ]; then
        local connects
        connects=$(n_events connect)
        # A shim cap below the app pool's size: the app pool's second connect
        # waits PQSHIM_POOL_TIMEOUT and fails with pqshim's message.
        mv "$T/shim.log" "$T/fits.log"
        PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 PQSHIM_POOL_TIMEOUT=0.3 run_ok "SQLAlchemy QueuePool, cap too small" \
            through "$policy" "$PYTHON" "$HELPERS/compat_sqlalchemy_queuepool.py" 2
        assert_contains "$(cat "$T/out")" "pqshim: pool limit of size 1 overflow 0 reached" \
            "QueuePool of 2 through a shim cap of 1"
        compat_note "QueuePool keeps its connections: pqshim sees only the app pool's own connects (20 checkouts, $connects connects here), so it has nothing to reuse, and its cap must be at least pool_size + max_overflow (a cap of 1 under a pool of 2 made the second connect fail after PQSHIM_POOL_TIMEOUT)"
        mv "$T/fits.log" "$T/shim.log"
    fi
}

test_sqlalchemy_queuepool_null() { row_sqlalchemy_queuepool null; }
test_sqlalchemy_queuepool_capped() { row_sqlalchemy_queuepool capped; }

# psycopg 3 in each implementation this Python has: "python" (ctypes, what
# Debian ships), "c" and "binary" (wheels; not packaged in Debian 12).
row_psycopg3() {
    local policy=$1 impl ran=""
    need_run python3-psycopg "psycopg 3" "$PYTHON" -c 'import psycopg' || return 0
    for impl in python c binary; do
        if ! PSYCOPG_IMPL=$impl "$PYTHON" -c 'import psycopg' >/dev/null 2>&1; then
            compat_note "psycopg 3 $impl implementation: not installed (not packaged in Debian 12), not tested"
            continue
        fi
        rm -f "$T/shim.log"
        PSYCOPG_IMPL=$impl run_ok "psycopg 3 ($impl)" through "$policy" "$PYTHON" "$HELPERS/compat_psycopg3.py"
        assert_eq "" "$(cat "$T/err")" "$impl: script stderr"
        check_clean "$T/out" 5
        assert_file_contains "$T/out" "done $impl" "$impl: script finished"
        check_shim "$policy" 8
        ran="${ran:+$ran, }$impl"
    done
    [ -n "$ran" ] || fail "no psycopg 3 implementation could be imported"
    compat_measure "implementations tested: $ran"
}

test_psycopg3_null() { row_psycopg3 null; }
test_psycopg3_capped() { row_psycopg3 capped; }

row_psycopg_pool() {
    local policy=$1
    need_run python3-psycopg-pool "psycopg_pool" "$PYTHON" -c 'import psycopg_pool' || return 0
    run_ok "psycopg_pool" through "$policy" "$PYTHON" "$HELPERS/compat_psycopg_pool.py"
    assert_eq "" "$(cat "$T/err")" "script stderr"
    assert_file_contains "$T/out" "errors 0 []" "pool users"
    assert_file_contains "$T/out" "requests 40" "pool requests"
    # 40 requests, at most max_size connects reach libpq.
    assert_le 3 "$(n_events connect)" "server connections"
    check_shim "$policy" 2 noreuse
    [ "$policy" = null ] ||
        compat_note "like QueuePool: the app pool keeps its connections, so pqshim's cap must be at least max_size"
}

test_psycopg_pool_null() { row_psycopg_pool null; }
test_psycopg_pool_capped() { row_psycopg_pool capped; }

# ---- pgcli -------------------------------------------------------------------------

# pgcli runs on psycopg 3's pure-Python binding (ctypes): the shim sees it
# through its dlsym wrapper. Typed on a terminal (a dumb one: prompt_toolkit
# then draws a plain prompt): leave state behind, \c to another database and
# back, check the session came back clean.
row_pgcli() {
    local policy=$1
    need_cmd pgcli pgcli || return 0
    mkdir -p "$T/home"
    {
        echo "expect postgres> "
        echo "send select 'clean ' || x as state from ($COMPAT_CHECK) s(x)"
        tr ';' '\n' <<<"$COMPAT_DIRTY" | while read -r statement; do
            echo "expect postgres> "
            echo "send $statement"
        done
        echo "expect postgres> "
        echo 'send \c template1'
        echo "expect template1> "
        echo 'send \c postgres'
        echo "expect postgres> "
        echo "send select 'clean ' || x as state from ($COMPAT_CHECK) s(x)"
        echo "expect postgres> "
        echo "send select 40 + 2 as answer"
        echo "expect postgres> "
        echo 'send \q'
    } >"$T/steps"
    HOME="$T/home" XDG_CONFIG_HOME="$T/home/.config" run_ok "pgcli" through "$policy" \
        "$PYTHON" "$COMPAT_LIB/pty_drive.py" 30 "$T/steps" pgcli --less-chatty --warn off
    tr -d '\r' <"$T/out" | sed 's/\x1b\[[0-9;]*m//g' >"$T/screen"
    assert_eq 2 "$(grep -c "^| clean $COMPAT_CLEAN *|$" "$T/screen" || true)" \
        "sessions that started clean: $(grep 'clean' "$T/screen" | tail -2)"
    assert_file_contains "$T/screen" 'You are now connected to database "template1"' "\\c template1"
    assert_file_contains "$T/screen" 'You are now connected to database "postgres"' "\\c postgres"
    grep -qE '^\| 42 +\|$' "$T/screen" || fail "no answer 42 in: $(tail -20 "$T/screen")"
    ! grep -qiE 'already exists|error' "$T/screen" ||
        fail "pgcli reported an error: $(grep -iE 'already exists|error' "$T/screen" | head -3)"
    # Through the shim, not around it: the main connection, the one for
    # completions, \c template1, \c postgres.
    check_shim "$policy" 4
}

test_pgcli_null() { row_pgcli null; }
test_pgcli_capped() { row_pgcli capped; }


# ---- Perl, Ruby, PHP, ODBC -------------------------------------------------------------

row_perl_dbd_pg() {
    local policy=$1
    need_run libdbd-pg-perl "Perl DBD::Pg" perl -MDBD::Pg -e 1 || return 0
    run_ok "DBD::Pg" through "$policy" perl "$HELPERS/compat_perl_dbd_pg.pl"
    assert_eq "" "$(cat "$T/err")" "script stderr"
    check_clean "$T/out" 5
    assert_file_contains "$T/out" "done DBD::Pg" "script finished"
    check_shim "$policy" 5
}

test_perl_dbd_pg_null() { row_perl_dbd_pg null; }
test_perl_dbd_pg_capped() { row_perl_dbd_pg capped; }

row_ruby_pg() {
    local policy=$1
    need_cmd ruby ruby || return 0
    need_run ruby-pg "Ruby pg" ruby -rpg -e 1 || return 0
    run_ok "Ruby pg" through "$policy" ruby "$HELPERS/compat_ruby_pg.rb"
    assert_eq "" "$(cat "$T/err")" "script stderr"
    check_clean "$T/out" 5
    assert_file_contains "$T/out" "done pg" "script finished"
    check_shim "$policy" 5
}

test_ruby_pg_null() { row_ruby_pg null; }
test_ruby_pg_capped() { row_ruby_pg capped; }

row_php_pgsql() {
    local policy=$1
    need_cmd php php-cli || return 0
    need_run php-pgsql "PHP pgsql" sh -c 'php -m | grep -qx pgsql' || return 0
    if [ -n "${TEST_SANITIZER:-}" ]; then
        # The sanitizer runtimes abort a dlopen with RTLD_DEEPBIND, which PHP
        # uses for every extension (see below).
        compat_skip "PHP cannot run under $TEST_SANITIZER: it loads extensions with RTLD_DEEPBIND"
        return 0
    fi
    run_ok "PHP pgsql" through "$policy" php "$HELPERS/compat_php_pgsql.php"
    assert_eq "" "$(cat "$T/err")" "script stderr"
    check_clean "$T/out" 5
    assert_file_contains "$T/out" "done php" "script finished"
    # PHP loads its extensions with RTLD_DEEPBIND: the calls reach the shim
    # only because it rewrote pgsql.so's relocation slots.
    check_shim "$policy" 5
    [ "$policy" = null ] ||
        compat_note "PHP loads extensions with dlopen(RTLD_DEEPBIND), so pgsql.so and pdo_pgsql.so bind libpq ahead of any preloaded library: pqshim rewrites their relocation slots (GOT) for the intercepted names after the load. Not runnable under ASan/TSan (their runtimes refuse RTLD_DEEPBIND)"
}

test_php_pgsql_null() { row_php_pgsql null; }
test_php_pgsql_capped() { row_php_pgsql capped; }

row_php_pdo_pgsql() {
    local policy=$1
    need_cmd php php-cli || return 0
    need_run php-pgsql "PHP pdo_pgsql" sh -c 'php -m | grep -qx pdo_pgsql' || return 0
    if [ -n "${TEST_SANITIZER:-}" ]; then
        compat_skip "PHP cannot run under $TEST_SANITIZER: it loads extensions with RTLD_DEEPBIND"
        return 0
    fi
    run_ok "PHP PDO" through "$policy" php "$HELPERS/compat_php_pdo.php"
    assert_eq "" "$(cat "$T/err")" "script stderr"
    check_clean "$T/out" 5
    assert_file_contains "$T/out" "done pdo" "script finished"
    check_shim "$policy" 5
}

test_php_pdo_pgsql_null() { row_php_pdo_pgsql null; }
test_php_pdo_pgsql_capped() { row_php_pdo_pgsql capped; }

# A DSN in a private odbc.ini, the psqlODBC driver named by its path.
write_odbc_ini() {
    local driver
    driver=$(ls /usr/lib/*/odbc/psqlodbcw.so 2>/dev/null | head -n 1)
    cat >"$T/odbc.ini" <<EOF
[compat]
Driver = $driver
Servername = $PGHOST
Port = $PGPORT
Database = postgres
Username = postgres
EOF
    : >"$T/odbcinst.ini"
    export ODBCINI="$T/odbc.ini" ODBCSYSINI="$T"
}

row_odbc_isql() {
    local policy=$1 i
    need_cmd isql unixodbc || return 0
    need_run odbc-postgresql "psqlODBC" sh -c 'ls /usr/lib/*/odbc/psqlodbcw.so' || return 0
    write_odbc_ini
    {
        echo "select 'clean ' || x from ($COMPAT_CHECK) s(x)"
        tr ';' '\n' <<<"$COMPAT_DIRTY"
        echo "select 'answer ' || 40 + 2"
    } >"$T/input.sql"
    : >"$T/all.out"
    for i in 1 2 3; do
        run_ok "isql, run $i" through "$policy" isql -b -v compat <"$T/input.sql"
        cat "$T/out" >>"$T/all.out"
        assert_eq "" "$(cat "$T/err")" "isql stderr"
    done
    assert_eq 3 "$(grep -cF "clean $COMPAT_CLEAN " "$T/all.out" || true)" "sessions that started clean"
    assert_eq 3 "$(grep -c "answer 42 " "$T/all.out" || true)" "answers"
    check_shim "$policy" 3 noreuse
    [ "$policy" = null ] ||
        compat_note "isql opens one connection per process: nothing to reuse (the pyodbc row loops in one process)"
}

test_odbc_isql_null() { row_odbc_isql null; }
test_odbc_isql_capped() { row_odbc_isql capped; }

row_odbc_pyodbc() {
    local policy=$1
    need_run python3-pyodbc "pyodbc" "$PYTHON" -c 'import pyodbc' || return 0
    need_run odbc-postgresql "psqlODBC" sh -c 'ls /usr/lib/*/odbc/psqlodbcw.so' || return 0
    write_odbc_ini
    run_ok "pyodbc" through "$policy" "$PYTHON" "$HELPERS/compat_odbc.py"
    assert_eq "" "$(cat "$T/err")" "script stderr"
    check_clean "$T/out" 5
    assert_file_contains "$T/out" "done pyodbc" "script finished"
    check_shim "$policy" 5
}

test_odbc_pyodbc_null() { row_odbc_pyodbc null; }
test_odbc_pyodbc_capped() { row_odbc_pyodbc capped; }

# ---- a libpq that is not the system one ---------------------------------------------

# A program with its own copy of libpq under a hashed name (as wheels bundle
# it), opened RTLD_LOCAL and called through dlsym only: the system libpq is
# never loaded. The shim finds the copy through its dlsym wrapper.
row_private_libpq() {
    local policy=$1 lib
    lib=$(ls /usr/lib/*/libpq.so.5.* 2>/dev/null | head -n 1)
    [ -n "$lib" ] || fail "no libpq.so.5.* to copy"
    mkdir -p "$T/vendor"
    cp "$lib" "$T/vendor/libpq-abc123.so.${lib##*.so.}"
    cc -std=gnu11 -O1 -o "$T/dlclient" "$HELPERS/compat_dlclient.c" -ldl 2>"$T/cc.err" || fail "cc: $(cat "$T/cc.err")"
    ! ldd "$T/dlclient" | grep -q 'libpq\.so' || fail "the client is linked to the system libpq"
    run_ok "private libpq client" through "$policy" "$T/dlclient" "$T/vendor/libpq-abc123.so.${lib##*.so.}"
    assert_eq "" "$(cat "$T/err")" "client stderr"
    check_clean "$T/out" 5
    assert_file_contains "$T/out" "done" "client finished"
    assert_eq 0 "$(n_matching ': warn ')" "warn lines (a pass-through would say libpq_not_found)"
    check_shim "$policy" 5
    compat_measure "intercepted through the dlsym wrapper"
}

test_private_libpq_null() { row_private_libpq null; }
test_private_libpq_capped() { row_private_libpq capped; }

# Two different libpq copies in one process: the system libpq.so.5 and a
# copy under its own soname, each the dependency of a plugin (the test
# driver loads both RTLD_LOCAL). Each plugin's connections must be made by
# its own copy, both through the shim.
row_two_libpq_copies() {
    local policy=$1 lib
    need_cmd patchelf patchelf || return 0
    [ -x "$TESTBIN/deepbind" ] && [ -f "$TESTBIN/libpqmod.so" ] || fail "deepbind, libpqmod.so not built (make test-build)"
    lib=$(ls /usr/lib/*/libpq.so.5 2>/dev/null | head -n 1)
    [ -n "$lib" ] || fail "no libpq.so.5 to copy"
    mkdir -p "$T/copy"
    cp "$lib" "$T/copy/libpq-copy.so.5"
    patchelf --set-soname libpq-copy.so.5 "$T/copy/libpq-copy.so.5"
    cp "$TESTBIN/libpqmod.so" "$T/copy/libpqmod2.so"
    patchelf --replace-needed libpq.so.5 libpq-copy.so.5 "$T/copy/libpqmod2.so"
    patchelf --set-rpath "$T/copy" "$T/copy/libpqmod2.so"
    run_ok "two libpq copies" through "$policy" "$TESTBIN/deepbind" -l -c 3 \
        "$TESTBIN/libpqmod.so" "$T/copy/libpqmod2.so"
    assert_eq 3 "$(grep -c 'connect_via=libpqshim\.so made_by=libpq\.so\.5$' "$T/out" || true)" \
        "first plugin: through the shim, made by libpq.so.5 ($(head -3 "$T/out"))"
    assert_eq 3 "$(grep -c 'connect_via=libpqshim\.so made_by=libpq-copy\.so\.5$' "$T/out" || true)" \
        "second plugin: through the shim, made by its own copy ($(tail -3 "$T/out"))"
    assert_eq 0 "$(n_matching ': warn ')" "warn lines"
    check_shim "$policy" 6
    [ "$policy" = null ] || assert_eq 2 "$(n_events connect)" "server connections: one pool per copy"
    compat_measure "each copy's connections made by that copy"
}

test_two_libpq_copies_null() { row_two_libpq_copies null; }
test_two_libpq_copies_capped() { row_two_libpq_copies capped; }
