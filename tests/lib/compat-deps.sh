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
. "$(dirname "$0")/install.bash"
install_missing " for make compat" ${need[@]+"${need[@]}"}
