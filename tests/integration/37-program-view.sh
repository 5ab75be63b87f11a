# What a program sees of its PGconn through the shim is what it sees of a
# direct connect: its own notice hooks from the moment a connect returns
# (never those of the connection's previous holder, never libpq's put back
# over its own), and the connection's description (host, port, options,
# parameters) with no trace of the gate an asynchronous connect waits
# behind. "Same as direct" is the test: each program runs directly and
# through the shim, and the outputs are compared.

. "$ROOT/tests/lib/capped.bash"
. "$ROOT/tests/lib/reliability.bash"

export PSYCOPG_IMPL=python

# same_as_direct NAME CMD...: run CMD directly, then under the null and the
# capped policy; each run must succeed, print exactly what the direct run
# printed, and write nothing on stderr (libpq's default notice processor
# prints a notice the program's own hook missed there).
same_as_direct() {
    local name=$1 policy
    shift
    timeout 120 "$@" >"$T/$name.direct" 2>"$T/$name.direct.err" ||
        fail "$name (direct) failed: $(tail -c 2000 "$T/$name.direct.err")" || return 1
    assert_eq "" "$(cat "$T/$name.direct.err")" "$name: stderr (direct)" || return 1
    for policy in ${VIEW_POLICIES:-null capped}; do
        PQSHIM_POLICY=$policy PQSHIM_LOG="$T/$name.$policy.log" \
            shimmed timeout 120 "$@" >"$T/$name.$policy" 2>"$T/$name.$policy.err" ||
            fail "$name ($policy) failed (status $?): $(tail -c 2000 "$T/$name.$policy.err")" ||
            return 1
        assert_eq "" "$(cat "$T/$name.$policy.err")" "$name: stderr ($policy)" || return 1
        diff -u "$T/$name.direct" "$T/$name.$policy" >&2 ||
            fail "$name: output under $policy differs from direct" || return 1
    done
}

# psycopg2 in green mode (asynchronous connects through wait_select), 50
# rounds of connect, notice, close: each round's notice reaches
# conn.notices, as directly; under capped the connection is reused.
test_psycopg2_green_notices() {
    same_as_direct green "$PYTHON" "$HELPERS/notice_rounds.py" 50 green || return 1
    assert_eq 50 "$(grep -c "NOTICE:  round" "$T/green.direct")" "notices heard"
    assert_eq 1 "$(count_events "$T/green.capped.log" connect)" "real connects under capped"
    # The program as first seen crashing: three rounds, run 50 times (10
    # under a sanitizer, where each run costs seconds).
    timeout 60 "$PYTHON" "$HELPERS/notice_rounds.py" 3 green >"$T/three.direct" ||
        fail "three rounds (direct) failed" || return 1
    local run runs=50
    [ -z "${TEST_SANITIZER:-}" ] || runs=10
    for run in $(seq "$runs"); do
        PQSHIM_POLICY=capped PQSHIM_LOG="$T/three.log" shimmed timeout 60 "$PYTHON" "$HELPERS/notice_rounds.py" 3 green \
            >"$T/three.capped" 2>"$T/three.err" ||
            fail "run $run under capped failed (status $?): $(tail -c 1000 "$T/three.err")" || return 1
        cmp -s "$T/three.direct" "$T/three.capped" && [ ! -s "$T/three.err" ] ||
            fail "run $run under capped: $(cat "$T/three.capped" "$T/three.err")" || return 1
    done
}

# Blocking and asynchronous opens and reuses in every order: a connection
# first opened by a blocking connect reused by an asynchronous one and the
# other way round; with a real ping at each checkout, an asynchronous
# reuse is made ready in the program's poll loop, after psycopg2 has set
# its notice processor.
test_psycopg2_mixed_notices() {
    PQSHIM_PRE_PING=always same_as_direct mixed "$PYTHON" "$HELPERS/notice_rounds.py" 12 sync,green,green,sync,sync,green ||
        return 1
    assert_eq 12 "$(grep -c "NOTICE:  round" "$T/mixed.direct")" "notices heard"
    assert_eq 1 "$(count_events "$T/mixed.capped.log" connect)" "real connects under capped"
}

# psycopg 3's notice handlers (a notice receiver), blocking and asyncio
# connects; with a real ping at each checkout, an asynchronous reuse is
# made ready in the program's poll loop, after psycopg has set its hooks.
test_psycopg3_notices() {
    PQSHIM_PRE_PING=always same_as_direct p3 "$PYTHON" "$HELPERS/notice_rounds_psycopg3.py" 12 sync,async,async,sync ||
        return 1
    assert_eq 12 "$(grep -c "'round" "$T/p3.direct")" "notices heard"
    assert_eq 1 "$(count_events "$T/p3.capped.log" connect)" "real connects under capped"
}

# The connection strings of the comparison: the server of the environment
# by its Unix socket, and by its loopback address spelled two ways.
view_conninfos() {
    CI_SOCKET="application_name=view"
    CI_IP="host=127.0.0.1 port=$PGPORT application_name=view"
    CI_NAME="host=localhost port=$PGPORT application_name=view"
}

# Every way to open a connection, each shown, then finished and opened
# again (reused under capped) by another way; the same with a gated
# asynchronous connect that waits for room (cap 1) and a blocking connect
# that then reuses what it opened.
test_conn_view_same_as_direct() {
    view_conninfos
    local ci
    for ci in "$CI_SOCKET" "$CI_IP" "$CI_NAME"; do
        PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 same_as_direct view "$TESTBIN/conn_view" \
            db a "$ci" show a finish a \
            params a "$ci" show a finish a \
            setdb a "$ci" show a finish a \
            start a "$ci" poll a show a finish a \
            startparams a "$ci" poll a show a finish a \
            db a "$ci" start b "$ci" where b finish a poll b show b finish b \
            db a "$ci" show a reset a show a finish a \
            start a "$ci" poll a reset a show a finish a \
            start a "$ci dbname=view_nosuchdb" poll a show a finish a \
            db a "$ci dbname=view_nosuchdb" show a finish a || return 1
    done
    # One program, requests that differ in spelling (a host name, its
    # address) or in an option given as an empty string: a connection
    # reused by another request reads as that request's own.
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 same_as_direct spelled "$TESTBIN/conn_view" \
        db a "$CI_IP" finish a db a "$CI_NAME" show a finish a \
        db a "$CI_IP" finish a start a "$CI_IP hostaddr=''" poll a show a finish a \
        db a "$CI_IP" show a finish a \
        db a "postgresql://127.0.0.1:$PGPORT/postgres?application_name=view&hostaddr=" \
        show a finish a db a "$CI_IP" show a finish a || return 1
}

# psycopg 3's conn.info (get_parameters, host, port, hostaddr) and
# psycopg2's conn.info and get_dsn_parameters, for blocking and
# asynchronous connects, each reusing the one before under capped.
test_psycopg_info_same_as_direct() {
    view_conninfos
    local ci
    for ci in "$CI_SOCKET" "$CI_IP" "$CI_NAME"; do
        same_as_direct info "$PYTHON" "$HELPERS/conn_view_psycopg.py" "$ci" || return 1
    done
}

# An asynchronous connect refused by a full server and retried behind the
# gate (the server lets go after the first retry) reads what a direct
# connect to the server, no longer full, reads; the same for a blocking
# connect that then reuses the connection (capped).
test_conn_view_retried_same_as_direct() {
    view_conninfos
    local ci=$CI_IP policy steps
    for policy in null capped; do
        steps=(start a "$ci" poll a show a finish a db a "$ci" show a finish a)
        full_holder_start -1
        PGUSER=$FULL_ROLE PQSHIM_POLICY=$policy PQSHIM_LOG="$T/retry.$policy.log" \
            shimmed timeout 60 "$TESTBIN/conn_view" "${steps[@]}" \
            >"$T/retry.$policy" 2>"$T/retry.$policy.err" &
        local pid=$!
        track_pid $pid
        await_line "$T/retry.$policy.log" 'event=retry .*async=1' 30 || fail "no retry ($policy)" || return 1
        touch "$T/release"
        wait_pid $pid 60 || fail "conn_view ($policy) failed: $(cat "$T/retry.$policy.err")" || return 1
        wait_pid "$HOLDER_PID" 10 || fail "the holder failed: $(cat "$T/holder.out")" || return 1
        PGUSER=$FULL_ROLE timeout 60 "$TESTBIN/conn_view" "${steps[@]}" >"$T/retry.direct" ||
            fail "conn_view (direct) failed" || return 1
        diff -u "$T/retry.direct" "$T/retry.$policy" >&2 ||
            fail "a retried connect under $policy reads differently from a direct one" || return 1
        assert_eq "" "$(cat "$T/retry.$policy.err")" "stderr ($policy)" || return 1
    done
}

# A role that needs a password over TCP (a line of its own at the top of
# the test cluster's pg_hba.conf): connections opened with the password,
# blocking and asynchronous, then reused, report that they used it; one
# without it fails as it does directly (needs a password, libpq's message).
hba_requires_view_password() {
    ! "$PSQL" -X -w -h 127.0.0.1 -U view_pw -c 'select 1' postgres >/dev/null 2>&1
}

test_conn_view_password_same_as_direct() {
    local hba="$CLUSTER_DIR/data/pg_hba.conf"
    [ -w "$hba" ] || { skip_test "the test cluster's pg_hba.conf is not writable"; return 0; }
    cp "$hba" "$T/hba.orig"
    on_exit "cat '$T/hba.orig' >'$hba'; sql 'select pg_reload_conf()'; sql 'drop role if exists view_pw'"
    sql "drop role if exists view_pw" >/dev/null
    sql "create role view_pw login password 'view-sesame'" >/dev/null
    { echo "host all view_pw 127.0.0.1/32 scram-sha-256"; cat "$T/hba.orig"; } >"$hba"
    sql "select pg_reload_conf()" >/dev/null
    wait_until 10 hba_requires_view_password || fail "the password line of pg_hba.conf never applied" ||
        return 1
    local ci="host=127.0.0.1 port=$PGPORT user=view_pw dbname=postgres application_name=view"
    PQSHIM_POOL_SIZE=1 PQSHIM_MAX_OVERFLOW=0 same_as_direct pw "$TESTBIN/conn_view" \
        db a "$ci password=view-sesame" show a finish a \
        start a "$ci password=view-sesame" poll a show a finish a \
        db a "$ci password=view-sesame" start b "$ci password=view-sesame" finish a poll b \
        show b finish b \
        db a "$ci password=view-sesame" show a finish a \
        start a "$ci" poll a show a finish a \
        db a "$ci" show a finish a || return 1
    assert_contains "$(cat "$T/pw.direct")" "used_password=1" "a connection that used the password"
    assert_contains "$(cat "$T/pw.direct")" "needs_password=1" "a connection that needs one"
}
