# Compatibility row: psycopg 3, sync and asyncio (60-compat).
import asyncio
import sys

import psycopg

sys.path.insert(0, ".")
from compat_session import use

out = []
for i in range(5):
    with psycopg.connect("", autocommit=True) as conn:
        use(lambda q: str(conn.execute(q).fetchone()[0]), conn.execute, out)
        # Past prepare_threshold (5) psycopg prepares the query on the server
        # as _pg3_0: a session that kept it would say "already exists" on
        # the next connect's first prepare.
        for n in range(8):
            assert conn.execute("select %s::int + 1", (n,)).fetchone() == (n + 1,)
    conn.close()


async def main():
    for i in range(3):
        aconn = await psycopg.AsyncConnection.connect("", autocommit=True)
        cur = await aconn.execute("select 40 + %s", (i,))
        assert (await cur.fetchone()) == (40 + i,)
        await aconn.close()


asyncio.run(main())
print("\n".join(out))
print("done", psycopg.pq.__impl__, psycopg.__version__)
