# terminate_backends.py APP SECONDS: for SECONDS, terminates a random
# backend of APP, alternately an idle and an active one; prints
# "idle=N active=M" (how many were terminated).
import sys, time
import psycopg2
app, seconds = sys.argv[1], float(sys.argv[2])
conn = psycopg2.connect("", application_name="killer")
conn.autocommit = True
cur = conn.cursor()
cur.execute("set client_min_messages = error")
killed = {"idle": 0, "active": 0}
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    for state in ("idle", "active"):
        cur.execute("select count(pg_terminate_backend(pid)) from (select pid from pg_stat_activity"
                    " where application_name = %s and state = %s order by random() limit 1) s",
                    (app, state))
        killed[state] += cur.fetchone()[0]
        time.sleep(0.05)
print("idle=%d active=%d" % (killed["idle"], killed["active"]))
