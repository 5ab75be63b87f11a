# Connect, raise a notice, close, ROUNDS times with psycopg 3 (its notice
# handlers), each connection opened by Connection.connect ("sync") or
# AsyncConnection.connect ("async"), the next round right after the close;
# prints the notices each round heard.
# Usage: notice_rounds_psycopg3.py ROUNDS MODE[,MODE...] (used in turn).
import asyncio
import sys

import psycopg


def handler_for(heard):
    return lambda diag: heard.append((diag.severity, diag.message_primary))


async def main(rounds, modes):
    for i in range(rounds):
        mode = modes[i % len(modes)]
        heard = []
        sql = "DO $$ BEGIN RAISE NOTICE 'round %s'; END $$" % i
        if mode == "async":
            conn = await psycopg.AsyncConnection.connect("", autocommit=True)
            conn.add_notice_handler(handler_for(heard))
            await conn.execute(sql)
            await conn.close()
        else:
            conn = psycopg.connect("", autocommit=True)
            conn.add_notice_handler(handler_for(heard))
            conn.execute(sql)
            conn.close()
        print(i, mode, heard, flush=True)


asyncio.run(main(int(sys.argv[1]), sys.argv[2].split(",")))
