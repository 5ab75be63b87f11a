# conn_sampler.py APP OUT STOP READY: samples the server's backends of APP every 20
# ms, reconnecting when the server goes away.
import os, sys, time
import psycopg2

app, out, stop, ready = sys.argv[1:5]
peak = samples = 0
conn = None
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        if conn is None:
            conn = psycopg2.connect("", application_name="conn_sampler")
            conn.autocommit = True
        cur = conn.cursor()
        cur.execute("select count(*) from pg_stat_activity where application_name = %s", (app,))
        peak = max(peak, cur.fetchone()[0])
        samples += 1
        if samples == 1:
            open(ready, "w").close()
    except psycopg2.Error:
        try:
            conn.close()
        except Exception:
            pass
        conn = None
    if os.path.exists(stop):
        break
    time.sleep(0.02)
with open(out + ".tmp", "w") as f:
    f.write("peak=%d samples=%d\n" % (peak, samples))
os.rename(out + ".tmp", out)
