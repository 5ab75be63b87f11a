# async_host_lists.py DEAD_PORT: asynchronous psycopg 3 connects through
# host lists, hostaddr and port lists (PGHOST, PGPORT: the server; DEAD_PORT:
# a port nobody listens on); prints the host and port each one reached,
# then libpq's error for a connect that reaches nothing.
import asyncio, os, sys
import psycopg

dead = sys.argv[1]
host, port = os.environ["PGHOST"], os.environ["PGPORT"]
cases = [
    f"host=127.0.0.1,{host} port={dead},{port}",
    f"hostaddr=127.0.0.1 port={port}",
    f"host=localhost,{host} hostaddr=127.0.0.1, port={dead},{port}",
    f"host={host} port={port} sslmode=prefer target_session_attrs=read-write",
]
async def main():
    for ci in cases:
        conn = await psycopg.AsyncConnection.connect(ci)
        cur = await conn.execute("select 1")
        print("ok", (await cur.fetchone())[0], conn.pgconn.host.decode(), conn.pgconn.port.decode())
        await conn.close()
    try:
        await psycopg.AsyncConnection.connect(f"host=127.0.0.1 port={dead}")
    except psycopg.OperationalError as e:
        print("refused", str(e).replace("\n", " | "))
asyncio.run(main())
