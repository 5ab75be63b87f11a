# Ten sequential psycopg2 connects in one process; prints each backend pid
# (30-capped).
import psycopg2
for i in range(10):
    conn = psycopg2.connect("")
    cur = conn.cursor()
    cur.execute("select pg_backend_pid()")
    print(cur.fetchone()[0])
    conn.close()
