# PHP: its extensions (pgsql, pdo_pgsql) are loaded with RTLD_DEEPBIND and
# bind libpq in their own scope; the shim rewrites their relocation slots,
# so PHP CLI scripts and PHP-FPM workers are counted, pooled and held to
# the host-wide limit like any other client.

. "$ROOT/tests/lib/capped.bash"

need_php() {
    [ -z "${TEST_SANITIZER:-}" ] ||
        { skip_test "PHP cannot run under $TEST_SANITIZER: it loads extensions with RTLD_DEEPBIND, which the sanitizer runtime refuses"; return 1; }
    command -v php >/dev/null 2>&1 || { skip_test "php not installed (Debian package php-cli; make deps installs it)"; return 1; }
    php -m 2>/dev/null | grep -qx "$1" ||
        { skip_test "PHP $1 not installed (Debian package php-pgsql; make deps installs it)"; return 1; }
}

# php_loop POLICY API N: a loop of N connect / query / close with the pgsql
# functions or PDO (tests/helpers/php_API_loop.php) through the shim;
# output in $T/out.
php_loop() {
    PQSHIM_POLICY=$1 PQSHIM_LOG="$T/shim.log" PQSHIM_LOG_LEVEL=debug \
        shimmed timeout -k 5 120 php "$HELPERS/php_$2_loop.php" "$3" >"$T/out" 2>"$T/err" ||
        fail "php_$2_loop.php exited with $?: $(cat "$T/out" "$T/err" | head -5)"
    assert_eq "" "$(cat "$T/err")" "php stderr"
    assert_eq "$3" "$(grep -c '^backend [0-9]' "$T/out")" "queries answered"
    assert_eq 0 "$(grep -cE ': (warn|error) ' "$T/shim.log" || true)" \
        "warn and error lines: $(grep -E ': (warn|error) ' "$T/shim.log" | head -3)"
}

backends() {
    grep '^backend ' "$T/out" | sort -u | wc -l
}

test_php_pgsql_null_counts_every_connect() {
    need_php pgsql || return 0
    php_loop null pgsql 12
    assert_eq 12 "$(count_events "$T/shim.log" connect)" "connect lines"
    assert_eq 12 "$(count_events "$T/shim.log" close)" "close lines"
    assert_eq 12 "$(backends)" "distinct backends"
}

test_php_pgsql_capped_reuses() {
    need_php pgsql || return 0
    php_loop capped pgsql 12
    assert_eq 12 "$(count_events "$T/shim.log" checkout)" "checkouts"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "server connections"
    assert_eq 1 "$(backends)" "distinct backends"
}

test_php_pdo_null_counts_every_connect() {
    need_php pdo_pgsql || return 0
    php_loop null pdo 12
    assert_eq 12 "$(count_events "$T/shim.log" connect)" "connect lines"
    assert_eq 12 "$(count_events "$T/shim.log" close)" "close lines"
    assert_eq 12 "$(backends)" "distinct backends"
}

test_php_pdo_capped_reuses() {
    need_php pdo_pgsql || return 0
    php_loop capped pdo 12
    assert_eq 12 "$(count_events "$T/shim.log" checkout)" "checkouts"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "server connections"
    assert_eq 1 "$(backends)" "distinct backends"
}

# As a new user would: the launcher in front of php.
test_php_through_launcher() {
    need_php pgsql || return 0
    "$LAUNCHER" --policy capped --log "$T/shim.log" -- php "$HELPERS/php_pgsql_loop.php" 5 >"$T/out" 2>"$T/err" ||
        fail "pqshim -- php exited with $?: $(cat "$T/err")"
    assert_eq 5 "$(grep -c '^backend [0-9]' "$T/out")" "queries answered"
    assert_eq 1 "$(count_events "$T/shim.log" connect)" "connect lines"
    assert_eq 1 "$(backends)" "distinct backends"
}

# ---- PHP-FPM -------------------------------------------------------------------

FPM_ROLE=pqshim_fpm

need_fpm() {
    need_php pgsql || return 1
    FPM=$(ls /usr/sbin/php-fpm* 2>/dev/null | head -n 1)
    [ -n "$FPM" ] || { skip_test "php-fpm not installed (Debian package php-fpm; make deps installs it)"; return 1; }
    command -v cgi-fcgi >/dev/null 2>&1 ||
        { skip_test "cgi-fcgi not installed (Debian package libfcgi-bin; make deps installs it)"; return 1; }
}

# fpm_start POLICY HOLD [HOST_LIMIT]: a PHP-FPM master with 8 static (or $FPM_WORKERS)
# workers, the shim preloaded as a service would have it, its settings in
# env[] lines of the pool. The page connects per request as a role the
# server admits 6 times, holds the connection HOLD seconds, and closes it.
fpm_start() {
    local policy=$1 hold=$2 limit=${3:-} workers=${FPM_WORKERS:-8}
    sql "drop role if exists $FPM_ROLE" >/dev/null
    sql "create role $FPM_ROLE login connection limit 6" >/dev/null
    on_exit "sql 'drop role if exists $FPM_ROLE' >/dev/null 2>&1"
    cat >"$T/page.php" <<EOF2
<?php
\$c = @pg_connect("host=$PGHOST port=$PGPORT dbname=postgres user=$FPM_ROLE", PGSQL_CONNECT_FORCE_NEW);
if (!\$c) { echo "error ", preg_replace('/\s+/', ' ', error_get_last()['message'] ?? '?'), "\n"; exit; }
\$r = pg_query(\$c, "select pg_backend_pid(), pg_sleep($hold)");
echo "ok ", pg_fetch_result(\$r, 0, 0), "\n";
pg_close(\$c);
EOF2
    cat >"$T/fpm.conf" <<EOF2
[global]
pid = $T/fpm.pid
error_log = $T/fpm.log
daemonize = no

[www]
listen = $T/fpm.sock
pm = static
pm.max_children = $workers
env[PQSHIM_POLICY] = "$policy"
env[PQSHIM_LOG] = "$T/shim.log"
env[PQSHIM_POOL_TIMEOUT] = 60
env[PQSHIM_HOST_LIMIT_FILE] = "$T/host.limit"
${limit:+env[PQSHIM_HOST_LIMIT] = $limit}
${FPM_EXTRA_ENV:-}
EOF2
    local root=()
    [ "$(id -u)" != 0 ] || root=(-R)
    # A simple command in the background: $! is the master itself.
    LD_PRELOAD="$SHIM_PRELOAD" "$FPM" -F -y "$T/fpm.conf" "${root[@]}" >"$T/fpm.out" 2>&1 &
    track_pid $!
    wait_until 20 test -S "$T/fpm.sock" || fail "php-fpm did not start: $(cat "$T/fpm.out" "$T/fpm.log" 2>/dev/null)"
}

# fpm_storm N PARALLEL: N requests, PARALLEL at a time; one file each in
# $T/r. Prints "ok OK error ERR". More requests in flight than workers keep
# every worker busy.
fpm_storm() {
    mkdir -p "$T/r"
    seq 1 "$1" | SCRIPT_FILENAME="$T/page.php" REQUEST_METHOD=GET SOCK="$T/fpm.sock" R="$T/r" \
        timeout 300 xargs -P "$2" -I{} sh -c 'cgi-fcgi -bind -connect "$SOCK" >"$R/{}" 2>&1'
    local ok err
    ok=$(cat "$T"/r/* | grep -c '^ok [0-9]' || true)
    err=$(cat "$T"/r/* | grep -c '^error ' || true)
    echo "ok $ok error $err"
}

test_php_fpm_host_limit_holds_storm() {
    need_fpm || return 0
    fpm_start null 0.05 5
    sampler_start usename
    local result
    result=$(fpm_storm 400 16)
    sampler_stop
    assert_eq "ok 400 error 0" "$result" "requests answered: $(cat "$T"/r/* | grep -v '^ok' | grep -v '^[A-Z]' | sort | uniq -c | head -3)"
    assert_le 5 "$(sampler_peak $FPM_ROLE)" "peak server connections of the FPM role"
    assert_ge 1 "$(sampler_peak $FPM_ROLE)" "peak server connections (the sampler saw the run)"
    assert_eq 400 "$(count_events "$T/shim.log" connect)" "connect lines (one per request)"
    assert_ge 1 "$(count_events "$T/shim.log" host_wait)" "host_wait lines (workers queued for a slot)"
    assert_eq 0 "$(count_events "$T/shim.log" host_timeout)" "host timeouts"
    # Every worker process served requests through the shim.
    assert_ge 2 "$(grep -oE '^pqshim\[[0-9]+\]' "$T/shim.log" | sort -u | wc -l)" "worker processes in the log"
}

# Reuse under capped needs workers at or below the host limit (the PHP-FPM
# recipe's sizing rule): with more workers than slots, a worker's checkin always
# finds another process waiting, and a single-threaded worker has no
# caller of its own to hand its connection to.
test_php_fpm_capped_host_limit_reuses() {
    need_fpm || return 0
    FPM_WORKERS=5 fpm_start capped 0.05 5
    sampler_start usename
    local result
    result=$(fpm_storm 400 16)
    sampler_stop
    assert_eq "ok 400 error 0" "$result" "requests answered"
    assert_le 5 "$(sampler_peak $FPM_ROLE)" "peak server connections of the FPM role"
    local connects
    connects=$(count_events "$T/shim.log" connect)
    [ "$connects" -lt 400 ] || fail "no reuse: $connects server connections for 400 requests"
    assert_eq 400 "$(grep -c '^ok [0-9]' <(cat "$T"/r/*))" "answers"
}

# Without the host limit: 8 workers against 6 admitted clients, and
# requests fail with the server's refusal (the retry while the server is
# full is turned off: it would hide the refusals behind delays). The server
# counts a session only once it is past authentication, and a connect costs
# more than a short hold on a busy machine: the page holds longer here, so
# that the 8 workers' sessions overlap.
test_php_fpm_without_limit_fails() {
    need_fpm || return 0
    FPM_EXTRA_ENV='env[PQSHIM_RETRY_FULL] = "off"' fpm_start null 0.4
    local result err
    result=$(fpm_storm 100 16)
    err=${result##* }
    [ "$err" -ge 1 ] || fail "every request succeeded without a limit ($result): the storm did not exceed the server"
    assert_contains "$(cat "$T"/r/* | grep '^error ' | head -1)" "too many connections for role" "the refusal"
    echo "without the host limit: $result"
}
