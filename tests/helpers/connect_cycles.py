# connect_cycles.py CONNINFO CYCLES PAUSE: connect, select 1 and close
# CYCLES times, PAUSE seconds apart (connections that sit idle in a pool
# meanwhile: closed by the server or by PgBouncer), printing each failure
# and "errors N" (32-fresh).
import sys, time
import psycopg2
conninfo, cycles, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
errors = 0
for i in range(cycles):
    try:
        c = psycopg2.connect(conninfo)
        cur = c.cursor()
        cur.execute("select 1")
        c.close()
    except Exception as e:
        errors += 1
        print("cycle %d: %s" % (i, str(e).strip().replace("\n", " ")))
    time.sleep(pause)
print("errors %d" % errors)
