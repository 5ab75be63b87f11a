"""An asyncio program (one thread) whose tasks each open a connection,
hold it across an await, and close it, while a ticker task measures how
long the event loop was ever kept from running.

    python3 async_tasks.py TASKS HOLD_S [--stagger-ms MS] [--pool]

Connection parameters come from the environment (PGHOST, PGPORT, ...).
Prints one JSON object: errors, the loop's longest stall, and the order in
which the tasks got their connections.
"""
import asyncio
import json
import sys
import time

import psycopg

TICK = 0.005


async def ticker(state):
    worst = 0.0
    while not state["done"]:
        before = time.monotonic()
        await asyncio.sleep(TICK)
        worst = max(worst, time.monotonic() - before - TICK)
    state["max_stall_ms"] = worst * 1000.0


async def task(i, hold, stagger, state):
    await asyncio.sleep(i * stagger)
    try:
        conn = await psycopg.AsyncConnection.connect("")
        state["order"].append(i)
        async with conn:
            cur = await conn.execute("select pg_backend_pid()")
            state["pids"].add((await cur.fetchone())[0])
            await asyncio.sleep(hold)
            await conn.execute("select 1")
    except Exception as exc:  # reported, not raised: the count is the test
        state["errors"].append(f"task {i}: {str(exc).strip()}")


async def pooled(tasks, hold, stagger, state):
    from psycopg_pool import AsyncConnectionPool
    async with AsyncConnectionPool("", min_size=1, max_size=tasks, timeout=60) as pool:
        async def use(i):
            await asyncio.sleep(i * stagger)
            try:
                async with pool.connection() as conn:
                    state["order"].append(i)
                    cur = await conn.execute("select pg_backend_pid()")
                    state["pids"].add((await cur.fetchone())[0])
                    await asyncio.sleep(hold)
            except Exception as exc:
                state["errors"].append(f"task {i}: {str(exc).strip()}")
        await asyncio.gather(*(use(i) for i in range(tasks)))


async def main():
    tasks, hold = int(sys.argv[1]), float(sys.argv[2])
    stagger = 0.02
    if "--stagger-ms" in sys.argv:
        stagger = float(sys.argv[sys.argv.index("--stagger-ms") + 1]) / 1000.0
    state = {"done": False, "order": [], "pids": set(), "errors": []}
    tick = asyncio.create_task(ticker(state))
    started = time.monotonic()
    if "--pool" in sys.argv:
        await pooled(tasks, hold, stagger, state)
    else:
        await asyncio.gather(*(task(i, hold, stagger, state) for i in range(tasks)))
    state["done"] = True
    await tick
    print(json.dumps({
        "errors": len(state["errors"]),
        "error_texts": state["errors"][:5],
        "max_stall_ms": round(state["max_stall_ms"], 1),
        "order": state["order"],
        "backends": len(state["pids"]),
        "elapsed_s": round(time.monotonic() - started, 2),
    }))


asyncio.run(main())
