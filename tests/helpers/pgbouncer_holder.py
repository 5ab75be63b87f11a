# pgbouncer_holder.py CONNINFO READY SECONDS: holds a connection through
# PgBouncer for SECONDS.
import sys, time
import psycopg2
dsn, ready, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
conns = [psycopg2.connect(dsn) for _ in range(2)]
open(ready, "w").close()
time.sleep(hold)
for c in conns:
    c.close()
