# fresh_bouncer.py CONNINFO: connections through PgBouncer that sit idle in
# the pool (32-fresh).
import sys, time
import psycopg2
errors = 0
for i in range(4):
    try:
        c = psycopg2.connect(sys.argv[1])
        cur = c.cursor()
        cur.execute("select 1")
        c.close()
    except Exception as e:
        errors += 1
        print("cycle %d: %s" % (i, str(e).strip().replace("\n", " ")))
    time.sleep(1.6)
print("errors %d" % errors)
