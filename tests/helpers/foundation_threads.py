# psycopg2 from several threads at once (10-foundation).
import threading
import psycopg2

errors = []
done = []

def work(n):
    try:
        for i in range(20):
            conn = psycopg2.connect("")
            cur = conn.cursor()
            cur.execute("select %s", (n * 100 + i,))
            assert cur.fetchone() == (n * 100 + i,)
            conn.close()
            done.append(1)
    except Exception as e:
        errors.append(repr(e))

threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("done", len(done), "errors", len(errors))
for e in errors[:5]:
    print(e)
