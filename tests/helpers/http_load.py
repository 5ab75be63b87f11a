"""Load for tests/helpers/fastapi_app.py over its Unix socket: REQUESTS
requests to PATH, CONCURRENCY at a time, while /ping is probed every
50 ms. Prints one JSON object: status counts, the slowest ping, errors.

    python3 http_load.py SOCKET PATH REQUESTS CONCURRENCY
"""
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

sock, path, requests, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
transport = httpx.HTTPTransport(uds=sock)
statuses, errors, pings = {}, [], []
lock = threading.Lock()
done = threading.Event()


def one(_):
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=sock), timeout=120) as client:
            r = client.get("http://app" + path)
            code = r.status_code
            if code != 200:
                with lock:
                    errors.append(r.text[:200])
    except Exception as exc:  # counted, not raised: the count is the test
        code = "exception"
        with lock:
            errors.append(str(exc)[:200])
    with lock:
        statuses[str(code)] = statuses.get(str(code), 0) + 1


def prober():
    with httpx.Client(transport=transport, timeout=120) as client:
        while not done.is_set():
            t0 = time.monotonic()
            client.get("http://app/ping")
            pings.append(time.monotonic() - t0)
            done.wait(0.05)


probe = threading.Thread(target=prober)
probe.start()
started = time.monotonic()
with ThreadPoolExecutor(concurrency) as pool:
    list(pool.map(one, range(requests)))
elapsed = time.monotonic() - started
done.set()
probe.join()
print(json.dumps({
    "statuses": statuses,
    "ok": statuses.get("200", 0),
    "errors": errors[:3],
    "max_ping_ms": round(max(pings) * 1000.0, 1) if pings else None,
    "pings": len(pings),
    "elapsed_s": round(elapsed, 2),
}))
