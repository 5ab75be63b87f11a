# psycopg2's asynchronous connections (async_=1) polled from one thread
# (36-async).
import select, time
import psycopg2, psycopg2.extensions as ext

def wait(conn):
    while True:
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        fd = conn.fileno()
        if state == ext.POLL_READ:
            select.select([fd], [], [], 10)
        elif state == ext.POLL_WRITE:
            select.select([], [fd], [], 10)

first = psycopg2.connect("", async_=1)
wait(first)
second = psycopg2.connect("", async_=1)   # must wait: cap 1
t0 = time.monotonic()
state = second.poll()
print("waiting", state in (ext.POLL_READ, ext.POLL_WRITE), round(time.monotonic() - t0, 3))
first.close()
wait(second)
cur = second.cursor()
cur.execute("select 1")
wait(second)
print("result", cur.fetchone()[0])
