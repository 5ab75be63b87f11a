# psycopg 3 connects one after another: one backend reused (30-capped:
# async_connects).
import psycopg
print(psycopg.pq.__impl__)
for i in range(5):
    with psycopg.connect("") as conn:
        print(conn.execute("select pg_backend_pid()").fetchone()[0])
