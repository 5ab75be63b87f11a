# pgbouncer_threads.py CONNINFO: psycopg2 threads through PgBouncer in
# transaction mode (70-pgbouncer).
import sys, threading
import psycopg2

dsn = sys.argv[1]
errors, done = [], [0]
lock = threading.Lock()

def work(t):
    try:
        for i in range(20):
            conn = psycopg2.connect(dsn)
            cur = conn.cursor()
            cur.execute("select %s::int * 1000 + %s::int, current_setting('pqshim.t', true)", (t, i))
            value, leftover = cur.fetchone()
            assert value == t * 1000 + i, value
            assert leftover in (None, ""), "leftover setting %r" % leftover
            cur.execute("set pqshim.t = 'thread%d'" % t)  # inside the transaction
            conn.close()
            with lock:
                done[0] += 1
    except Exception as e:
        with lock:
            errors.append(repr(e))

threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
for th in threads:
    th.start()
for th in threads:
    th.join()
print("ok=%d errors=%d" % (done[0], len(errors)))
for e in errors[:5]:
    print(e, file=sys.stderr)
