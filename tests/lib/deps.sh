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
# The asyncio and web-service tests: psycopg_pool, and a FastAPI app under
# uvicorn driven by httpx.
/usr/bin/python3 -c 'import psycopg_pool' >/dev/null 2>&1 || need+=(python3-psycopg-pool)
/usr/bin/python3 -c 'import fastapi, uvicorn, httpx' >/dev/null 2>&1 ||
    need+=(python3-fastapi python3-uvicorn python3-httpx)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v pgbouncer >/dev/null 2>&1 || [ -n "${PQSHIM_NO_PGBOUNCER:-}" ] || need+=(pgbouncer)
command -v groff >/dev/null 2>&1 || need+=(groff-base)
# PHP (extensions loaded with RTLD_DEEPBIND), PHP-FPM driven by cgi-fcgi,
# and patchelf for a second libpq copy: their tests skip when missing.
if [ -z "${PQSHIM_NO_PHP:-}" ]; then
    command -v php >/dev/null 2>&1 || need+=(php-cli)
    { command -v php >/dev/null 2>&1 && php -m 2>/dev/null | grep -qx pgsql; } || need+=(php-pgsql)
    ls /usr/sbin/php-fpm* >/dev/null 2>&1 || need+=(php-fpm)
    command -v cgi-fcgi >/dev/null 2>&1 || need+=(libfcgi-bin)
fi
command -v patchelf >/dev/null 2>&1 || need+=(patchelf)
# The package test (tests/integration/80-package.sh) builds and installs a
# .deb, so it runs only as root: only root needs its tools.
if [ "$(id -u)" = 0 ]; then
    command -v dpkg-buildpackage >/dev/null 2>&1 || need+=(dpkg-dev)
    command -v dh >/dev/null 2>&1 || need+=(debhelper)
fi
. "$(dirname "$0")/install.bash"
install_missing "" ${need[@]+"${need[@]}"}
