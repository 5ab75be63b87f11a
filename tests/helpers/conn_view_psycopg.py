# What psycopg 3 (conn.info) and psycopg2 (conn.info, get_dsn_parameters)
# tell about their connections, opened blocking and asynchronously, one
# after the other (so a pool reuses them), for a comparison of runs with
# and without the shim. Usage: conn_view_psycopg.py CONNINFO
import asyncio
import sys

import psycopg
import psycopg2
import psycopg2.extensions
import psycopg2.extras

conninfo = sys.argv[1]


def show3(label, info):
    print(label, "parameters", sorted(info.get_parameters().items()))
    print(label, "host", info.host, "port", info.port, "hostaddr", info.hostaddr)
    print(label, "dbname", info.dbname, "user", info.user, "options", info.options)
    print(label, "server_version", info.server_version, "status", info.status)
    print(label, "error", repr(info.error_message))


async def open_async(label):
    conn = await psycopg.AsyncConnection.connect(conninfo)
    show3(label, conn.info)
    await conn.close()


def show2(label, conn):
    info = conn.info
    print(label, "dsn_parameters", sorted(conn.get_dsn_parameters().items()))
    print(label, "host", info.host, "port", info.port, "dbname", info.dbname,
          "user", info.user, "options", info.options)
    print(label, "error", repr(info.error_message))


for label in ("p3-sync-1", "p3-async-1", "p3-async-2", "p3-sync-2"):
    if "async" in label:
        asyncio.run(open_async(label))
    else:
        conn = psycopg.connect(conninfo)
        show3(label, conn.info)
        conn.close()

for label in ("p2-sync-1", "p2-green-1", "p2-green-2", "p2-sync-2"):
    psycopg2.extensions.set_wait_callback(
        psycopg2.extras.wait_select if "green" in label else None)
    conn = psycopg2.connect(conninfo)
    show2(label, conn)
    conn.close()
