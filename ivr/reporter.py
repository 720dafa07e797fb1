"""A SIP worker's link to Redis: its bus events and heartbeat, sent from a thread of their own.

The pjsua2 thread only appends to an in-memory queue (`publish` never blocks). This thread sends
the queue to the event stream and refreshes the heartbeat about once a second. While Redis is
unreachable it logs once, keeps the events (up to `max_pending`, oldest dropped first) and retries
every interval, so a Redis restart neither crashes the worker nor loses the calls it reported.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis

from hotline import bus

log = logging.getLogger(__name__)

StatusFn = Callable[[], Mapping[str, Any]]


class Reporter:
    def __init__(
        self,
        redis_url: str,
        kind: str,
        name: str,
        status: StatusFn,
        *,
        interval_s: float = 1.0,
        ttl_s: float = 5.0,
        max_pending: int = 10_000,
    ) -> None:
        self.kind = kind
        self.name = name
        self._url = redis_url
        self._status = status
        self._interval_s = interval_s
        self._ttl_s = ttl_s
        self._pending: collections.deque[tuple[str, dict[str, Any], tuple[str, ...]]] = collections.deque(
            maxlen=max_pending
        )
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: redis.Redis | None = None
        self._down_since: float | None = None

    def publish(self, type_: str, data: Mapping[str, Any], rooms: tuple[str, ...] = ()) -> None:
        """Queue an event for the bus (to Socket.IO `rooms` too); returns at once (pjsua2 thread)."""
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                log.warning("event queue full; dropping the oldest event")
            self._pending.append((type_, dict(data), rooms))
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-reporter", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Send what is queued (for up to `timeout_s`), remove the heartbeat, stop the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("reporter still busy after %.1fs; %d event(s) unsent", timeout_s, self.pending)
        if self._client is not None:
            self._client.close()

    @property
    def pending(self) -> int:
        return len(self._pending)

    # The reporter thread ------------------------------------------------------------------------
    def _run(self) -> None:
        next_beat = 0.0
        while not self._stopping.is_set():
            if time.monotonic() >= next_beat:
                self._attempt(self._beat)
                next_beat = time.monotonic() + self._interval_s
            if self._pending and self._down_since is None:
                self._attempt(self._flush)
            self._wake.wait(max(0.0, next_beat - time.monotonic()))
            self._wake.clear()
        # Last words: the call.ended events of a shutdown, then no heartbeat left behind.
        self._attempt(self._flush)
        self._attempt(self._forget)

    def _attempt(self, action: Callable[[redis.Redis], None]) -> None:
        try:
            if self._client is None:
                self._client = bus.connect(self._url, timeout_s=2.0)
            action(self._client)
        except (redis.RedisError, OSError) as exc:
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning(
                    "redis unavailable (%s); retrying every %.0fs, %d event(s) waiting",
                    exc,
                    self._interval_s,
                    self.pending,
                )
            return
        if self._down_since is not None:
            log.info("redis reachable again after %.1fs", time.monotonic() - self._down_since)
            self._down_since = None

    def _beat(self, client: redis.Redis) -> None:
        bus.heartbeat(client, self.kind, self.name, self._status(), ttl_s=self._ttl_s)

    def _flush(self, client: redis.Redis) -> None:
        events = bus.EventBus(client)
        while True:
            with self._lock:
                if not self._pending:
                    return
                type_, data, rooms = self._pending[0]
            events.publish(type_, data, rooms)
            # Removed only once Redis took it: a failure above leaves it queued for the next try.
            with self._lock:
                if self._pending and self._pending[0][0] == type_ and self._pending[0][1] is data:
                    self._pending.popleft()

    def _forget(self, client: redis.Redis) -> None:
        client.delete(f"{bus.HEARTBEAT_PREFIX}:{self.kind}:{self.name}")
