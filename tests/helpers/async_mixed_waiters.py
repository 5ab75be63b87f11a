# Blocking and asynchronous waiters in one process at a cap of 1 (36-async:
# blocking_and_async_waiters_fifo).
import asyncio, threading, time
import psycopg, psycopg2

order = []
holder = psycopg2.connect("")
def blocking():
    c = psycopg2.connect("")          # waits in this thread
    order.append("blocking")
    time.sleep(0.2)
    c.close()
t = threading.Thread(target=blocking)
t.start()
time.sleep(0.3)                       # the thread is queued first
async def main():
    task = asyncio.create_task(psycopg.AsyncConnection.connect(""))
    await asyncio.sleep(0.3)
    holder.close()                    # frees the only slot
    conn = await task
    order.append("async")
    await conn.close()
asyncio.run(main())
t.join()
print(",".join(order))
