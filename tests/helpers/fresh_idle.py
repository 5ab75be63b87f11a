# Connections the server closes while idle in the pool: the program sees
# nothing of it (32-fresh).
import time
import psycopg2
errors = 0
for i in range(12):
    try:
        c = psycopg2.connect("options='-c idle_session_timeout=150'")
        cur = c.cursor()
        cur.execute("select 1")
        c.close()
    except Exception as e:
        errors += 1
        print("cycle %d: %s" % (i, str(e).strip().replace("\n", " ")))
    time.sleep(0.4)
print("errors %d" % errors)
