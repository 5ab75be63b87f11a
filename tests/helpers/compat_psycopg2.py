# Compatibility row: psycopg2, sync, async, threads and forked children
# (60-compat).
import multiprocessing
import select
import sys
import threading

import psycopg2
import psycopg2.extensions as ext

sys.path.insert(0, ".")
from compat_session import use

out = []


def session(**kw):
    conn = psycopg2.connect("", **kw)
    conn.autocommit = True
    cur = conn.cursor()

    def fetchone(q):
        cur.execute(q)
        return str(cur.fetchone()[0])

    use(fetchone, cur.execute, out)
    conn.close()


# Sync, one after another.
for i in range(5):
    session()

# Users alternate: each sees itself, never the other's session.
for i in range(3):
    for user in ("compat_a", "compat_b"):
        conn = psycopg2.connect("", user=user)
        cur = conn.cursor()
        cur.execute("select current_user || ' ' || session_user")
        assert cur.fetchone()[0] == user + " " + user
        conn.close()

# Threads.
errors = []


def work():
    try:
        for i in range(5):
            conn = psycopg2.connect("")
            cur = conn.cursor()
            cur.execute("select 1")
            assert cur.fetchone() == (1,)
            conn.close()
    except Exception as e:  # reported below
        errors.append(repr(e))


threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not errors, errors

# Fork: children connect on their own; the parent's open connection and its
# pooled idle one stay the parent's.
idle = psycopg2.connect("")
cur = idle.cursor()
cur.execute("select pg_backend_pid()")
idle_pid = cur.fetchone()[0]
idle.close()
parent = psycopg2.connect("")
pcur = parent.cursor()
pcur.execute("select pg_backend_pid()")
parent_pid = pcur.fetchone()[0]


def child(n):
    conn = psycopg2.connect("")
    cur = conn.cursor()
    cur.execute("select pg_backend_pid(), %s", (n,))
    pid, m = cur.fetchone()
    conn.close()
    return pid, m


ctx = multiprocessing.get_context("fork")
with ctx.Pool(2) as pool:
    # Bounded: a worker that dies makes a plain map() wait forever.
    results = pool.map_async(child, range(6)).get(timeout=60)
assert [m for _, m in results] == list(range(6)), results
child_pids = {pid for pid, _ in results}
assert not child_pids & {idle_pid, parent_pid}, (child_pids, idle_pid, parent_pid)
pcur.execute("select 40 + 2")
assert pcur.fetchone() == (42,)
parent.close()
again = psycopg2.connect("")
acur = again.cursor()
acur.execute("select 40 + 2")
assert acur.fetchone() == (42,)
again.close()


# Async (PQconnectStart + PQconnectPoll), twice.
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
    raise RuntimeError("never ready")


for i in range(2):
    aconn = psycopg2.connect("", async_=1)
    wait(aconn)
    acur = aconn.cursor()
    acur.execute("select 40 + %s", (i,))
    wait(aconn)
    assert acur.fetchone() == (40 + i,)
    aconn.close()

print("\n".join(out))
print("done")
