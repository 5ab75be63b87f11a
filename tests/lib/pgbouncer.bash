# shellcheck shell=bash
# Helpers for the PgBouncer tests (tests/integration/70-pgbouncer.sh): a
# throwaway Debian PgBouncer per test, in transaction mode, in front of the
# test cluster. Sourced after common.sh; not a test file itself.
#
# PgBouncer logs in to the server as its own role ($BOUNCER_ROLE, whatever
# user the client gives: auth_type = any), so its server connections are the
# backends of that role in pg_stat_activity.

PGBOUNCER_BIN=${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}
BOUNCER_ROLE=pqshim_bouncer
BOUNCER_DB=bouncedb
BOUNCER_PORT=""
BOUNCER_PID=""


# need_pgbouncer: true when PgBouncer is installed, else skip the test.
need_pgbouncer() {
    [ -x "$PGBOUNCER_BIN" ] && return 0
    skip_test "pgbouncer not installed (Debian package pgbouncer; tests/lib/deps.sh installs it unless PQSHIM_NO_PGBOUNCER is set)"
    return 1
}

# bouncer_start [KEY=VALUE...]: start PgBouncer with the test's settings,
# each KEY=VALUE replacing or adding a [pgbouncer] setting. Listens on
# 127.0.0.1:$BOUNCER_PORT and on a Unix socket in $T; its database
# $BOUNCER_DB is the cluster's $BOUNCER_SERVER_DB (default $PGDATABASE).
# Stopped when the test ends, passed or not.
bouncer_start() {
    sql "do \$\$ begin
           if not exists (select from pg_roles where rolname = '$BOUNCER_ROLE') then
             create role $BOUNCER_ROLE login in role pg_read_all_data;
           end if;
         end \$\$" >/dev/null
    declare -A conf=(
        [listen_addr]=127.0.0.1
        [unix_socket_dir]=$T
        [auth_type]=any
        [pool_mode]=transaction
        [default_pool_size]=2
        [max_client_conn]=100
        [logfile]=$T/pgbouncer.log
        [pidfile]=$T/pgbouncer.pid
        [server_login_retry]=1
    )
    local kv
    for kv in "$@"; do conf[${kv%%=*}]=${kv#*=}; done
    on_exit bouncer_stop

    for _ in 1 2 3 4 5; do
        BOUNCER_PORT=$(bouncer_free_port)
        {
            echo "[databases]"
            echo "$BOUNCER_DB = host=$PGHOST port=$PGPORT dbname=${BOUNCER_SERVER_DB:-$PGDATABASE} user=$BOUNCER_ROLE"
            echo "[pgbouncer]"
            echo "listen_port = $BOUNCER_PORT"
            for kv in "${!conf[@]}"; do echo "$kv = ${conf[$kv]}"; done
        } >"$T/pgbouncer.ini"
        chmod 644 "$T/pgbouncer.ini"
        rm -f "$T/pgbouncer.pid"
        # PgBouncer refuses to run as root: run it as the cluster's owner.
        pg_as_owner "$PGBOUNCER_BIN" "$T/pgbouncer.ini" >>"$T/pgbouncer.stderr" 2>&1 &
        BOUNCER_PID=$!
        if wait_until 10 bouncer_ready; then
            echo "pgbouncer listening on 127.0.0.1:$BOUNCER_PORT and $T (pid $(cat "$T/pgbouncer.pid"))"
            return 0
        fi
        bouncer_stop
    done
    fail "pgbouncer did not start: $(tail -n 20 "$T/pgbouncer.log" "$T/pgbouncer.stderr" 2>/dev/null)"
}

bouncer_ready() {
    kill -0 "$BOUNCER_PID" 2>/dev/null && [ -s "$T/pgbouncer.pid" ] &&
        bouncer_admin "show version" >/dev/null 2>&1
}

# bouncer_stop: TERM (PgBouncer's immediate shutdown), KILL after 5 s; then
# wait for its server connections to end.
bouncer_stop() {
    [ -n "$BOUNCER_PID" ] || return 0
    local pid
    pid=$(cat "$T/pgbouncer.pid" 2>/dev/null || true)
    [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
    kill -TERM "$BOUNCER_PID" 2>/dev/null || true
    if ! wait_until 5 eval "! kill -0 $BOUNCER_PID 2>/dev/null"; then
        [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
        kill -KILL "$BOUNCER_PID" 2>/dev/null || true
    fi
    wait "$BOUNCER_PID" 2>/dev/null || true
    BOUNCER_PID=""
    wait_until 5 output_is 0 bouncer_server_connections || true
}

bouncer_free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# at_bouncer CMD...: CMD with libpq's defaults pointing at PgBouncer's Unix
# socket and database (the user stays $PGUSER).
at_bouncer() {
    PGHOST=$T PGPORT=$BOUNCER_PORT PGDATABASE=$BOUNCER_DB "$@"
}

# bouncer_tcp: a conninfo for PgBouncer's loopback TCP listener.
bouncer_tcp() {
    echo "host=127.0.0.1 port=$BOUNCER_PORT dbname=$BOUNCER_DB"
}

# bouncer_admin "COMMAND": a command on PgBouncer's admin console, rows
# unaligned, fields separated by a space, no header.
bouncer_admin() {
    PGHOST=$T PGPORT=$BOUNCER_PORT "$PSQL" -X -q -A -t -F ' ' -d pgbouncer -U pgbouncer -c "$1"
}

# bouncer_pool_servers: server connections of $BOUNCER_DB's pool as
# PgBouncer counts them (SHOW POOLS: active, idle, used, tested, login).
bouncer_pool_servers() {
    PGHOST=$T PGPORT=$BOUNCER_PORT "$PSQL" -X -q -d pgbouncer -U pgbouncer -c "show pools" \
        --csv | "$PYTHON" -c '
import csv, sys
n = 0
for row in csv.DictReader(sys.stdin):
    if row["database"] == sys.argv[1]:
        n += sum(int(row[c]) for c in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"))
print(n)
' "$BOUNCER_DB"
}

# bouncer_stat COLUMN: a column of SHOW STATS for $BOUNCER_DB.
bouncer_stat() {
    PGHOST=$T PGPORT=$BOUNCER_PORT "$PSQL" -X -q -d pgbouncer -U pgbouncer -c "show stats" \
        --csv | "$PYTHON" -c '
import csv, sys
for row in csv.DictReader(sys.stdin):
    if row["database"] == sys.argv[1]:
        print(row[sys.argv[2]])
' "$BOUNCER_DB" "$1"
}

# bouncer_server_connections: server connections PgBouncer holds now, as
# the server sees them.
bouncer_server_connections() {
    sql "select count(*) from pg_stat_activity where usename = '$BOUNCER_ROLE'"
}

output_is() {  # EXPECTED CMD...: CMD prints exactly EXPECTED
    local expected=$1
    shift
    [ "$("$@")" = "$expected" ]
}

# bouncer_log_count REGEX: lines of PgBouncer's log matching REGEX.
bouncer_log_count() {
    local n
    n=$(grep -cE -- "$1" "$T/pgbouncer.log" 2>/dev/null || true)
    echo "${n:-0}"
}

# shim_summary LOG: one line of what the shim did (checkouts, connections
# to PgBouncer, closes by reason), for the test's output.
shim_summary() {
    echo "shim: $(count_events "$1" checkout) checkouts, $(count_events "$1" connect)" \
        "connections to PgBouncer; closes: $(grep -o ' reason=[a-z_]*' "$1" | sort | uniq -c | tr -s ' \n' ' ')"
}
