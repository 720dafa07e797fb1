"""Limits on failed public look-ups (number + phone), per address and per ticket number.

Only failures count: a citizen who knows the pair is never held up, someone guessing phones for
a number (or numbers from one address) is stopped. Counters are a sliding-window estimate in
Redis (this window's count plus the previous window's, weighted by how much of it still
overlaps), so the check on every look-up is one MGET and each failure one pipelined write. The
app's Flask-Limiter did the same with three scripted calls per look-up, which made the look-up
several times dearer than the page it guards (docs/benchmarks.md).

The Redis client is the app's (`app.extensions["hotline"]["redis"]`, responses decoded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limit:
    scope: str  # "address" or "number"
    count: int
    window_s: int


LIMITS = (Limit("address", 10, 600), Limit("address", 30, 86400), Limit("number", 10, 3600))
PREFIX = "hotline:lookup-failures"


def _keys(limit: Limit, who: str, now: float) -> tuple[str, str]:
    index = int(now // limit.window_s)
    base = f"{PREFIX}:{limit.scope}:{limit.window_s}:{who}"
    return f"{base}:{index}", f"{base}:{index - 1}"


def _who(limit: Limit, address: str, number: str) -> str:
    return address if limit.scope == "address" else number.strip()[:32]


def allowed(redis: Any, address: str, number: str, now: float) -> bool:
    """False when this address or this number has failed too often lately (one round trip)."""
    keys = [k for limit in LIMITS for k in _keys(limit, _who(limit, address, number), now)]
    values = redis.mget(keys)
    for i, limit in enumerate(LIMITS):
        current, previous = (int(v or 0) for v in values[2 * i : 2 * i + 2])
        overlap = 1 - (now % limit.window_s) / limit.window_s
        if current + previous * overlap >= limit.count:
            return False
    return True


def failed(redis: Any, address: str, number: str, now: float) -> None:
    """Count one failed look-up against the address and the number (one round trip)."""
    pipe = redis.pipeline(transaction=False)
    for limit in LIMITS:
        key, _previous = _keys(limit, _who(limit, address, number), now)
        pipe.incr(key)
        pipe.expire(key, 2 * limit.window_s)  # kept while it is this or the previous window
    pipe.execute()
