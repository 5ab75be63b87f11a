# psycopg2 in 8 threads through a small cap (30-capped).
import threading
import psycopg2

errors = []
done = [0]
lock = threading.Lock()

def work():
    for i in range(25):
        try:
            conn = psycopg2.connect("")
            cur = conn.cursor()
            cur.execute("select pg_sleep(0.002), 1")
            assert cur.fetchone()[1] == 1
            conn.close()
            with lock:
                done[0] += 1
        except Exception as e:
            with lock:
                errors.append(repr(e))

threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("done=%d errors=%d" % (done[0], len(errors)))
for e in errors[:5]:
    print(e)
