# Compatibility row: psycopg_pool's ConnectionPool from threads (60-compat).
import threading

import psycopg_pool

pool = psycopg_pool.ConnectionPool("", min_size=2, max_size=3, timeout=10)
pool.wait(10)
errors = []


def work(n):
    try:
        for i in range(10):
            with pool.connection() as conn:
                assert conn.execute("select %s::int", (n,)).fetchone() == (n,)
    except Exception as e:
        errors.append(repr(e))


threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
stats = pool.get_stats()
pool.close()
print("errors", len(errors), errors[:3])
print("requests", stats.get("requests_num"))
