"""Redis connections and the event bus every process publishes to.

Events go to one capped Redis stream (`hotline:events`). Any process appends with
`EventBus.publish`; readers follow the stream with `EventBus.follow`, which remembers the last id
it saw, so a reader that loses Redis for a while resumes where it stopped instead of silently
missing what happened meanwhile (pub/sub would drop them). The web process follows the stream and
relays each event to the Socket.IO rooms it names. This module is an infra leaf: it imports no
project package.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

log = logging.getLogger(__name__)

EVENTS_STREAM = "hotline:events"
# About a day of a busy city's events; the durable record is SQL, this is live fan-out.
EVENTS_MAXLEN = 100_000


def connect(url: str, *, decode_responses: bool = True, timeout_s: float = 5.0) -> redis.Redis:
    """A Redis client for `redis://`, `rediss://` or `unix://` URLs."""
    return redis.Redis.from_url(
        url,
        decode_responses=decode_responses,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )


@dataclass(frozen=True)
class Event:
    type: str
    data: Mapping[str, Any]
    rooms: tuple[str, ...] = ()
    at: float = field(default_factory=time.time)
    id: str | None = None

    def to_fields(self) -> dict[str, str]:
        return {
            "type": self.type,
            "data": json.dumps(self.data, ensure_ascii=False, default=str),
            "rooms": ",".join(self.rooms),
            "at": repr(self.at),
        }

    @classmethod
    def from_fields(cls, event_id: str, fields: Mapping[str, str]) -> Event:
        rooms = tuple(r for r in fields.get("rooms", "").split(",") if r)
        return cls(
            type=fields["type"],
            data=json.loads(fields.get("data", "{}")),
            rooms=rooms,
            at=float(fields.get("at", "0")),
            id=event_id,
        )


class EventBus:
    """Publish events to the stream and follow it."""

    def __init__(self, client: redis.Redis, stream: str = EVENTS_STREAM) -> None:
        self.redis = client
        self.stream = stream

    def publish(self, type_: str, data: Mapping[str, Any], rooms: tuple[str, ...] = ()) -> str:
        event = Event(type=type_, data=data, rooms=rooms)
        event_id = self.redis.xadd(self.stream, event.to_fields(), maxlen=EVENTS_MAXLEN, approximate=True)
        return str(event_id)

    def follow(
        self,
        last_id: str = "$",
        block_ms: int = 1000,
        stop: Any = None,
        max_backoff_s: float = 10.0,
    ) -> Iterator[Event]:
        """Yield events after `last_id` until `stop()` is true; survive Redis going away.

        `$` means "from now on". While Redis is unreachable the loop backs off (0.2 s doubling to
        `max_backoff_s`) and then resumes after the last id it delivered.
        """
        if last_id == "$":
            last_id = self._tail_id()
        backoff = 0.2
        while stop is None or not stop():
            try:
                batches = self.redis.xread({self.stream: last_id}, count=100, block=block_ms)
                backoff = 0.2
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("event bus: redis unavailable (%s); retrying in %.1fs", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, max_backoff_s)
                continue
            for _stream, entries in batches or []:
                for event_id, fields in entries:
                    last_id = event_id
                    yield Event.from_fields(event_id, fields)

    @staticmethod
    def _tail_id() -> str:
        # Stream ids are millisecond timestamps: "now" works even while Redis is unreachable.
        return f"{int(time.time() * 1000)}-0"


# Process heartbeats ---------------------------------------------------------------------------
# Each long-running part (a SIP worker, an RQ worker, ...) refreshes a small hash with a TTL; the
# health page and the supervisor read them. A part that stops refreshing disappears by itself.
HEARTBEAT_PREFIX = "hotline:procs"


def heartbeat(
    client: redis.Redis, kind: str, name: str, fields: Mapping[str, Any], ttl_s: float = 5.0
) -> None:
    key = f"{HEARTBEAT_PREFIX}:{kind}:{name}"
    values = {k: json.dumps(v) for k, v in fields.items()} | {"seen": json.dumps(time.time())}
    pipe = client.pipeline(transaction=True)
    pipe.hset(key, mapping=values)
    pipe.pexpire(key, int(ttl_s * 1000))
    pipe.execute()


def alive(client: redis.Redis, kind: str) -> dict[str, dict[str, Any]]:
    """The parts of `kind` whose heartbeat has not expired, by name."""
    found: dict[str, dict[str, Any]] = {}
    prefix = f"{HEARTBEAT_PREFIX}:{kind}:"
    for key in client.scan_iter(match=f"{prefix}*", count=500):
        raw = client.hgetall(key)
        if raw:
            name = key[len(prefix) :] if isinstance(key, str) else key.decode()[len(prefix) :]
            found[name] = {_s(k): json.loads(v) for k, v in raw.items()}
    return found


def _s(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
