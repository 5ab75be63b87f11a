#!/usr/bin/env bash
# Install what building and testing need, on Debian, when it is missing.
# Not root, or not Debian: print the exact command instead.
set -u
need=()
[ -f "$(pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)/libpq-fe.h" ] || need+=(libpq-dev)
[ -f /usr/include/uthash.h ] || need+=(uthash-dev)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || need+=(postgresql-contrib)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
/usr/bin/python3 -c 'import psycopg2' >/dev/null 2>&1 || need+=(python3-psycopg2)
/usr/bin/python3 -c 'import psycopg' >/dev/null 2>&1 || need+=(python3-psycopg)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v pgbouncer >/dev/null 2>&1 || [ -n "${PQSHIM_NO_PGBOUNCER:-}" ] || need+=(pgbouncer)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "pqshim: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
        || { echo "pqshim: apt-get install ${need[*]} failed" >&2; exit 1; }
    # The server package may start a cluster of its own; ours are throwaway.
    exit 0
fi
echo "pqshim: missing packages: ${need[*]}" >&2
echo "pqshim: install them with: sudo apt-get install ${need[*]}" >&2
exit 1
