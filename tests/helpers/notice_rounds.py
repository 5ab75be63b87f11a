# Connect, raise a notice, close, ROUNDS times with psycopg2, opening each
# connection blocking ("sync") or in green mode ("green": an asynchronous
# connect driven by wait_select); prints what conn.notices held each round.
# Usage: notice_rounds.py ROUNDS MODE[,MODE...] (modes are used in turn).
import gc
import sys

import psycopg2
import psycopg2.extensions
import psycopg2.extras

rounds = int(sys.argv[1])
modes = sys.argv[2].split(",")
for i in range(rounds):
    mode = modes[i % len(modes)]
    psycopg2.extensions.set_wait_callback(
        psycopg2.extras.wait_select if mode == "green" else None)
    conn = psycopg2.connect("")
    cur = conn.cursor()
    cur.execute("DO $$ BEGIN RAISE NOTICE 'round %s'; END $$" % i)
    conn.commit()
    print(i, mode, conn.notices, flush=True)
    conn.close()
    del cur, conn
    gc.collect()
