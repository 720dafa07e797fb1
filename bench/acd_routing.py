"""Routing decision latency and throughput of the ACD store on a real Redis.

50 ready seats and 500 waiting callers; each decision offers one caller to one seat
(`AcdStore.dispatch(limit=1)`), after which that seat answers, hangs up and is ready again and a
new caller joins, so the load stays the same. Prints p50/p99 latency and decisions per second,
next to a baseline of a bare Redis round trip (PING) measured in the same run.

    python bench/acd_routing.py                      # embedded Redis under a temp folder
    REDIS_URL=redis://127.0.0.1:6379/9 python bench/acd_routing.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from acd.seat_states import SeatEvent
from acd.store import AcdStore
from hotline import bus, embedded_redis

SEATS, WAITING, DECISIONS = 50, 500, 2000


def main() -> None:
    server = None
    url = os.environ.get("REDIS_URL")
    if not url:
        tmp = Path(tempfile.mkdtemp())
        server = embedded_redis.start(tmp / "r.sock", tmp / "data")
        url = f"unix://{tmp / 'r.sock'}"
    client = bus.connect(url)
    client.flushdb()
    store = AcdStore(client)
    for n in range(SEATS):
        ext = f"8{n:03d}"
        store.upsert_seat(ext, {"general": 1})
        store.set_registered(ext, True)
        store.seat_event(ext, SeatEvent.LOGIN)
        store.seat_event(ext, SeatEvent.READY)
    for n in range(WAITING):
        store.enqueue(f"c{n}", "general")

    pings = []
    for _ in range(500):
        started = time.perf_counter()
        client.ping()
        pings.append(time.perf_counter() - started)

    latencies = []
    next_call = WAITING
    wall = time.perf_counter()
    for _ in range(DECISIONS):
        started = time.perf_counter()
        (offer,) = store.dispatch(limit=1)
        latencies.append(time.perf_counter() - started)
        store.seat_event(offer.extension, SeatEvent.ANSWER)
        store.seat_event(offer.extension, SeatEvent.HANGUP)
        store.seat_event(offer.extension, SeatEvent.WRAP_UP_TIMEOUT)
        store.enqueue(f"c{next_call}", "general")
        next_call += 1
    wall = time.perf_counter() - wall

    q = statistics.quantiles(latencies, n=100)
    ping = statistics.median(pings)
    print(f"seats {SEATS}, waiting callers {WAITING}, decisions {DECISIONS}")
    print(f"redis PING round trip p50: {ping * 1e3:.3f} ms (baseline)")
    print(f"routing decision p50: {q[49] * 1e3:.2f} ms ({q[49] / ping:.0f}x PING), p99: {q[98] * 1e3:.2f} ms")
    print(f"decisions per second (decision alone): {DECISIONS / sum(latencies):.0f}")
    print(f"decisions per second (with answer/hangup/ready/enqueue around each): {DECISIONS / wall:.0f}")
    client.flushdb()
    if server is not None:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
