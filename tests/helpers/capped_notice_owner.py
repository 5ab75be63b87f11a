# A pooled connection outlives the Python object that set its notice processor
# (30-capped).
import gc
import psycopg2

conn = psycopg2.connect("")
pid = conn.get_backend_pid()
cur = conn.cursor()
cur.execute("do $$begin raise notice 'one'; end$$")  # leaves a transaction open
assert conn.notices == ["NOTICE:  one\n"], conn.notices
conn.close()
del cur, conn
gc.collect()
junk = [bytearray(256) for _ in range(20000)]  # reuse the freed memory
for i in range(3):
    conn = psycopg2.connect("")
    assert conn.get_backend_pid() == pid, (conn.get_backend_pid(), pid)
    conn.cursor().execute("do $$begin raise notice 'again %s'; end$$" % i)
    assert conn.notices == ["NOTICE:  again %d\n" % i], conn.notices
    conn.close()
    del conn
    gc.collect()
print("ok", pid)
