# sampler.py OUT STOP READY GROUP_EXPR: samples pg_stat_activity by GROUP_EXPR
# until STOP exists.
import os, sys, time
import psycopg2

out, stop, ready, group = sys.argv[1:5]
conn = psycopg2.connect("")
conn.autocommit = True
cur = conn.cursor()
query = ("select coalesce((%s)::text, '?'), count(*) from pg_stat_activity "
         "where backend_type = 'client backend' and pid <> pg_backend_pid() "
         "group by 1" % group)
peak, total_peak, samples = {}, 0, 0
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    cur.execute(query)
    total = 0
    for key, n in cur.fetchall():
        peak[key] = max(peak.get(key, 0), n)
        total += n
    total_peak = max(total_peak, total)
    samples += 1
    if samples == 1:
        open(ready, "w").close()
    if os.path.exists(stop):
        break
    time.sleep(0.02)
with open(out + ".tmp", "w") as f:
    f.write("total %d\n" % total_peak)
    for key, n in sorted(peak.items()):
        f.write("group %s %d\n" % (key, n))
    f.write("samples %d\n" % samples)
os.rename(out + ".tmp", out)
