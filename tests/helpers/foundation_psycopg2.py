# psycopg2 (libpq loaded RTLD_LOCAL): sync connects, then an async one
# (10-foundation).
import ctypes
import select
import psycopg2
import psycopg2.extensions as ext

# Python loads extension modules RTLD_LOCAL: libpq is not in the global
# scope, so the shim cannot find it with dlsym(RTLD_NEXT).
assert not hasattr(ctypes.CDLL(None), "PQlibVersion"), "libpq is global"

for i in range(3):
    conn = psycopg2.connect("")
    cur = conn.cursor()
    cur.execute("select 1")
    assert cur.fetchone() == (1,)
    conn.close()

def wait(conn):
    for _ in range(1000):
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        if state == ext.POLL_READ:
            select.select([conn.fileno()], [], [], 10)
        elif state == ext.POLL_WRITE:
            select.select([], [conn.fileno()], [], 10)
        else:
            raise RuntimeError("poll state %r" % state)
    raise RuntimeError("async connection never became ready")

aconn = psycopg2.connect("", async_=1)
wait(aconn)
cur = aconn.cursor()
cur.execute("select 2")
wait(aconn)
assert cur.fetchone() == (2,)
aconn.close()
print("ok")
