# psycopg 3 cancels through the shim: its own work, an old one leaves the next
# user alone (32-fresh).
import threading, time
import psycopg
for i in range(3):
    conn = psycopg.connect("")
    t = threading.Timer(0.2, conn.cancel)
    t.start()
    try:
        conn.execute("select pg_sleep(5)")
        print("not cancelled")
    except psycopg.errors.QueryCanceled:
        print("cancelled")
    t.join()
    conn.close()
first = psycopg.connect("")
stale, pid = first.pgconn.get_cancel(), first.info.backend_pid
first.close()
second = psycopg.connect("")
t = threading.Timer(0.2, stale.cancel)
t.start()
second.execute("select pg_sleep(0.6)")
t.join()
print("same backend %s, query done" % (second.info.backend_pid == pid))
second.close()
