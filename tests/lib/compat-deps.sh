#!/usr/bin/env bash
# Install the clients of the compatibility matrix (make compat), on Debian,
# when they are missing. Kept apart from deps.sh so that make check installs
# little. Not root, or not Debian: print the exact command instead.
set -u
need=()
py() { /usr/bin/python3 -c "$1" >/dev/null 2>&1; }
command -v pgcli >/dev/null 2>&1 || need+=(pgcli)
py 'import sqlalchemy' || need+=(python3-sqlalchemy)
py 'import psycopg_pool' || need+=(python3-psycopg-pool)
perl -MDBD::Pg -e 1 >/dev/null 2>&1 || need+=(libdbd-pg-perl)
command -v ruby >/dev/null 2>&1 && ruby -rpg -e 1 >/dev/null 2>&1 || need+=(ruby-pg)
command -v php >/dev/null 2>&1 || need+=(php-cli)
command -v php >/dev/null 2>&1 && php -m 2>/dev/null | grep -qx pgsql || need+=(php-pgsql)
command -v isql >/dev/null 2>&1 || need+=(unixodbc)
py 'import pyodbc' || need+=(python3-pyodbc)
ls /usr/lib/*/odbc/psqlodbcw.so >/dev/null 2>&1 || need+=(odbc-postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "pqshim: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
        || { echo "pqshim: apt-get install ${need[*]} failed" >&2; exit 1; }
    exit 0
fi
echo "pqshim: missing packages for make compat: ${need[*]}" >&2
echo "pqshim: install them with: sudo apt-get install ${need[*]}" >&2
exit 1
