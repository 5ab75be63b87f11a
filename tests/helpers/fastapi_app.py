"""A FastAPI service that opens a connection per request, as the small
services pqshim is made for do: /sync runs in FastAPI's thread pool with
psycopg2, /async on the event loop with psycopg 3's AsyncConnection, and
/ping touches no database (it shows whether the event loop is free).

    python3 -m uvicorn --app-dir tests/helpers fastapi_app:app --uds PATH
"""
import psycopg
import psycopg2
from fastapi import FastAPI

app = FastAPI()
QUERY = "select pg_backend_pid(), pg_sleep(0.05)"


@app.get("/sync")
def sync_endpoint():
    conn = psycopg2.connect("")
    try:
        cur = conn.cursor()
        cur.execute(QUERY)
        return {"pid": cur.fetchone()[0]}
    finally:
        conn.close()


@app.get("/async")
async def async_endpoint():
    async with await psycopg.AsyncConnection.connect("") as conn:
        cur = await conn.execute(QUERY)
        return {"pid": (await cur.fetchone())[0]}


@app.get("/ping")
async def ping():
    return {"ok": True}
