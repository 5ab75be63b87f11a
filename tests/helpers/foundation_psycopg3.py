# psycopg 3, pure-Python implementation (ctypes + dlsym): three connects
# (10-foundation).
import psycopg
assert psycopg.pq.__impl__ == "python", psycopg.pq.__impl__
for i in range(3):
    conn = psycopg.connect("")
    assert conn.execute("select %s::int", (i,)).fetchone() == (i,)
    conn.close()
print("ok", psycopg.pq.__impl__)
