# A program that closes every descriptor, then connects under the host limit
# (35-host-limit).
import os, time
import psycopg2
psycopg2.connect("").close()
os.closerange(3, 65536)
t0 = time.monotonic()
c = psycopg2.connect("")
cur = c.cursor()
cur.execute("select 5")
print(cur.fetchone()[0], "%.0f" % ((time.monotonic() - t0) * 1000))
