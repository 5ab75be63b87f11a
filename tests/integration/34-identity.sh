# A pooled session goes only to a connect that libpq would have
# authenticated as that session: empty values, service files, password
# files and the effective user are read as libpq reads them, at every
# connect. Each case runs the same steps directly and through the capped
# pool and compares what the server says; a random sequence of requests
# (tests/clients/identity_fuzz.c) does the same at scale.

# identity_cluster: a cluster of the test's own (the main one keeps its
# trust-only setup), with roles authenticated by trust, scram, md5 and
# peer, and a superuser role named like the OS user running the tests.
identity_cluster() {
    cluster_start 200 || return 1
    on_exit cluster_stop
    local data="$CLUSTER_DIR/data" me
    me=$(id -un)
    pg_as_owner tee "$data/pg_hba.conf" >/dev/null <<EOF
local all fz_peer peer map=fz
local all fz_scram scram-sha-256
host  all fz_scram 127.0.0.1/32 scram-sha-256
local all fz_md5 md5
host  all fz_md5 127.0.0.1/32 md5
local all all trust
host  all all 127.0.0.1/32 trust
EOF
    echo "fz nobody fz_peer" | pg_as_owner tee "$data/pg_ident.conf" >/dev/null
    sql "select pg_reload_conf()" >/dev/null
    sql "create role fz_trust login; create role fz_peer login;
         create role fz_super login superuser; create role fz_nologin nologin;
         create role fz_scram login password 'scram-pw';
         set password_encryption = 'md5'; create role fz_md5 login password 'md5-pw';
         create role \"$me\" login superuser" >/dev/null 2>&1 ||
        sql "create role fz_trust login; create role fz_peer login;
             create role fz_super login superuser; create role fz_nologin nologin;
             create role fz_scram login password 'scram-pw';
             set password_encryption = 'md5'; create role fz_md5 login password 'md5-pw'" >/dev/null
    sql "create database fz_db1" >/dev/null
    sql "create database fz_trust" >/dev/null
}

# same_as_direct STEP...: the steps directly, then through the capped pool;
# what the server said must be the same (backend pids aside). The shim's
# output is left in $T/shim.out with the pids, its log in $T/shim.log.
same_as_direct() {
    "$PYTHON" "$HELPERS/identity_steps.py" "$@" >"$T/direct.out" 2>&1
    PQSHIM_POLICY=capped PQSHIM_LOG="$T/shim.log" PQSHIM_LOG_LEVEL=debug \
        shimmed "$PYTHON" "$HELPERS/identity_steps.py" "$@" >"$T/shim.out" 2>&1
    echo "direct:"; cat "$T/direct.out"; echo "shim:"; cat "$T/shim.out"
    diff <(sed 's/ pid=[0-9]*//' "$T/direct.out") <(sed 's/ pid=[0-9]*//' "$T/shim.out") ||
        fail "through the pool, the server saw other sessions than directly"
}

pid_of() {  # LINE: the backend pid of line LINE of the shim's output
    sed -n "${1}p" "$T/shim.out" | sed -n 's/.* pid=\([0-9]*\).*/\1/p'
}

test_empty_values_are_not_the_environments() {
    identity_cluster
    same_as_direct setenv PGUSER fz_trust setenv PGDATABASE fz_db1 \
        "user=''" "" "user=''" "postgresql://?user=" \
        "dbname=''" "" \
        setenv PGUSER fz_scram setenv PGPASSWORD scram-pw \
        "" "password=''" ""
    # Positive control: the same request again does reuse its backend.
    assert_eq "$(pid_of 1)" "$(pid_of 3)" "user='' again reuses its session"
    [ "$(pid_of 1)" != "$(pid_of 2)" ] || fail "an empty user got the PGUSER session"
    assert_contains "$(sed -n 8p "$T/shim.out")" "FAIL" "password='' with PGPASSWORD set"
}

test_service_file_changes_reach_the_pool() {
    identity_cluster
    local svc="$T/services"
    same_as_direct setenv PGSERVICEFILE "$svc" \
        write "$svc" "[svc]\ndbname=postgres\nuser=fz_trust\n" "service=svc" "service=svc" \
        write "$svc" "[svc]\ndbname=fz_db1\nuser=fz_super\n" "service=svc" \
        write "$svc" "[svc]\nuser=fz_scram\npassword=wrong\n" "service=svc" \
        write "$svc" "[svc]\nuser=fz_scram\npassword=scram-pw\n" "service=svc" "service=svc"
    assert_eq "$(pid_of 1)" "$(pid_of 2)" "an unchanged service reuses its session"
    assert_contains "$(sed -n 3p "$T/shim.out")" "OK fz_super fz_db1" "the service's new user and database"
    assert_contains "$(sed -n 4p "$T/shim.out")" "FAIL" "the service's wrong password"
}

# An asynchronous connect that waits or retries behind the shim's gate is
# restated from libpq's reading of it, which does not name the service:
# with PGSERVICE naming another one, the restatement would read that.
test_async_service_request_keeps_its_service() {
    identity_cluster
    local svc="$T/services"
    same_as_direct setenv PGSERVICEFILE "$svc" \
        write "$svc" "[svc]\ndbname=fz_db1\nuser=fz_trust\n[envsvc]\napplication_name=from_envsvc\n" \
        setenv PGSERVICE envsvc async "service=svc" async "service=svc" "service=svc"
    assert_contains "$(sed -n 1p "$T/shim.out")" "OK fz_trust fz_db1" "the request's own service"
    assert_not_contains "$(cat "$T/shim.out")" "from_envsvc" "PGSERVICE's settings"
}

test_password_file_changes_reach_the_pool() {
    identity_cluster
    local pass="$T/pgpass"
    same_as_direct setenv PGPASSFILE "$pass" \
        write "$pass" "*:*:*:fz_scram:scram-pw\n" "user=fz_scram" "user=fz_scram" \
        write "$pass" "*:*:*:fz_scram:wrong\n" "user=fz_scram" \
        remove "$pass" "user=fz_scram" \
        write "$pass" "*:*:*:fz_scram:scram-pw\n" "user=fz_scram" \
        write "$pass" "*:*:*:fz_md5:md5-pw\n" "user=fz_md5" "user=fz_scram"
    assert_eq "$(pid_of 1)" "$(pid_of 2)" "an unchanged password file reuses its session"
    assert_contains "$(sed -n 3p "$T/shim.out")" "FAIL" "a rotated password"
    assert_contains "$(sed -n 4p "$T/shim.out")" "FAIL" "a removed password file"
    assert_contains "$(sed -n 7p "$T/shim.out")" "FAIL" "a file without the role's entry"
}

test_peer_authentication_follows_the_effective_user() {
    [ "$(id -u)" = 0 ] || { skip_test "not root: cannot change the effective user"; return 0; }
    id nobody >/dev/null 2>&1 || { skip_test "no user nobody"; return 0; }
    identity_cluster
    # As a root daemon acting for two users: peer maps only nobody to fz_peer.
    same_as_direct seteuid nobody "user=fz_peer" "user=fz_peer" seteuid root "user=fz_peer" \
        seteuid nobody "user=fz_peer"
    assert_eq "$(pid_of 1)" "$(pid_of 2)" "the same effective user reuses its session"
    assert_contains "$(sed -n 3p "$T/shim.out")" "Peer authentication failed" "root asking for fz_peer"
}

# A client certificate authenticates over TLS: the one in ~/.postgresql
# replaced by another user's, the pooled session is not handed on.
test_client_certificate_changes_reach_the_pool() {
    command -v openssl >/dev/null || { skip_test "openssl is not installed"; return 0; }
    identity_cluster
    local tls="$T/tls" home="$T/home" who
    mkdir -p "$tls" "$home/.postgresql"
    (
        cd "$tls"
        openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=fz-ca \
            -keyout ca.key -out ca.crt
        openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -out server.crt
        for who in fz_cert_a fz_cert_b; do
            openssl req -newkey rsa:2048 -nodes -subj "/CN=$who" -keyout "$who.key" -out "$who.csr"
            openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
                -out "$who.crt"
        done
    ) >"$T/openssl.log" 2>&1 || fail "openssl: $(tail -n 5 "$T/openssl.log")"
    chmod 600 "$tls"/*.key
    [ -z "$CLUSTER_OWNER" ] || chown "$CLUSTER_OWNER" "$tls/server.key" "$tls/server.crt" "$tls/ca.crt"
    chmod 755 "$tls"
    pg_as_owner sed -i '1i hostssl all fz_cert_a,fz_cert_b 127.0.0.1/32 cert' "$CLUSTER_DIR/data/pg_hba.conf"
    sql "create role fz_cert_a login; create role fz_cert_b login" >/dev/null
    local setting
    for setting in "ssl_cert_file = '$tls/server.crt'" "ssl_key_file = '$tls/server.key'" \
        "ssl_ca_file = '$tls/ca.crt'" "ssl = on"; do
        sql "alter system set $setting" >/dev/null
    done
    sql "select pg_reload_conf()" >/dev/null
    local req="host=127.0.0.1 user=fz_cert_a sslmode=require"
    same_as_direct setenv HOME "$home" \
        copy "$tls/fz_cert_a.crt" "$home/.postgresql/postgresql.crt" \
        copy "$tls/fz_cert_a.key" "$home/.postgresql/postgresql.key" "$req" "$req" \
        copy "$tls/fz_cert_b.crt" "$home/.postgresql/postgresql.crt" \
        copy "$tls/fz_cert_b.key" "$home/.postgresql/postgresql.key" "$req" \
        "host=127.0.0.1 user=fz_cert_b sslmode=require"
    assert_contains "$(sed -n 1p "$T/shim.out")" "OK fz_cert_a" "the first certificate authenticates"
    assert_eq "$(pid_of 1)" "$(pid_of 2)" "the same certificate reuses its session"
    assert_contains "$(sed -n 3p "$T/shim.out")" "FAIL" "another user's certificate"
    assert_contains "$(sed -n 4p "$T/shim.out")" "OK fz_cert_b" "the other user's own connect"
}

# identity_fuzz_run SEED COUNT: the random sequence directly and through
# the capped pool; outputs (and libpq's messages on stderr) identical.
identity_fuzz_run() {
    local other=""
    [ "$(id -u)" != 0 ] || other=$(id -u nobody 2>/dev/null || true)
    # Both runs start from the same (empty) directory: files an earlier
    # run left would be read by one and not the other.
    rm -rf "$T/fz" && mkdir -p "$T/fz" && chmod 755 "$T/fz"
    "$TESTBIN/identity_fuzz" "$1" "$2" "$T/fz" "$PGHOST" "$PGPORT" $other \
        >"$T/direct.out" 2>"$T/direct.err" || fail "direct run: $(tail -n 5 "$T/direct.err")"
    rm -rf "$T/fz" "$T/shim.log" && mkdir -p "$T/fz" && chmod 755 "$T/fz"
    PQSHIM_POLICY=capped PQSHIM_POOL_SIZE=2 PQSHIM_IDLE_TIMEOUT=5 PQSHIM_LOG="$T/shim.log" \
        PQSHIM_LOG_LEVEL=debug shimmed "$TESTBIN/identity_fuzz" "$1" "$2" "$T/fz" \
        "$PGHOST" "$PGPORT" $other >"$T/shim.out" 2>"$T/shim.err" ||
        fail "shimmed run: $(tail -n 5 "$T/shim.err")"
    local oks reused
    oks=$(grep -c '^  OK' "$T/direct.out" || true)
    reused=$(grep -c ' event=checkout .*reused=1' "$T/shim.log" || true)
    echo "seed $1: $2 steps, $(grep -c '^  ' "$T/direct.out") connects, $oks sessions, $reused reused" |
        tee -a "${PQSHIM_FUZZ_REPORT:-/dev/null}"
    [ -z "${PQSHIM_FUZZ_KEEP:-}" ] || cp "$T/direct.out" "$T/shim.out" "$T/shim.log" "$PQSHIM_FUZZ_KEEP/"
    if ! diff "$T/direct.out" "$T/shim.out" >"$T/diff"; then
        head -n 40 "$T/diff"
        fail "seed $1: through the pool, a request got another outcome than directly (first: $(grep -m1 '^[<>]' "$T/diff"))"
    fi
    diff "$T/direct.err" "$T/shim.err" || fail "seed $1: libpq said other things on stderr"
    # The pool was exercised: a fuzzer that never reuses proves nothing.
    assert_ge $((oks / 10)) "$reused" "reused checkouts"
}

# make check: one seeded run; make fuzz: PQSHIM_FUZZ_SEEDS and
# PQSHIM_FUZZ_COUNT make it longer.
test_identity_fuzz_same_as_direct() {
    identity_cluster
    local seed
    for seed in ${PQSHIM_FUZZ_SEEDS:-1}; do
        identity_fuzz_run "$seed" "${PQSHIM_FUZZ_COUNT:-400}"
    done
}
