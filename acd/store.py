"""The live ACD state in Redis: seats and the atomic transaction core (the call side: `queue_ops`).

Every change is an optimistic transaction on one version key: read what the rules need, decide
with the pure modules (`seat_states`, `routing`), then write in MULTI/EXEC together with an
increment of `acd:version`. A concurrent change by any other process (another softswitch, a web
node) bumps the version, the EXEC fails, and the decision is taken again on fresh state. So two
processes can never offer one seat two calls, and a seat's state is never written from a stale
read.

A change that may let a waiting caller reach a seat (a caller queued or put back, a seat ready,
a phone registered) is announced on the `acd:wake` channel, so the softswitch workers that
hold waiting callers dispatch at once instead of at their next round (see docs/acd.md).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

import redis

from acd.queue_ops import QueueOps
from acd.records import (
    AHT,
    AHT_WEIGHT,
    GIVE_BACK,
    QUEUES,
    RETRIES,
    S_WRAP,
    SEATS,
    VERSION,
    WAKE,
    Change,
    Conflict,
    Offer,
    QueueUnavailable,
    Seat,
    call_key,
    seat_from,
    seat_key,
)
from acd.seat_states import SeatEvent, SeatState, SeatTransitionError, next_state

# The store's public names, wherever they are defined.
__all__ = [
    "AHT",
    "QUEUES",
    "SEATS",
    "VERSION",
    "WAKE",
    "AcdStore",
    "Change",
    "Conflict",
    "Offer",
    "QueueUnavailable",
    "Seat",
]


class AcdStore(QueueOps):
    def __init__(
        self,
        client: redis.Redis,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[Change], None] | None = None,
    ) -> None:
        self.redis = client
        self.clock = clock
        self.on_change = on_change

    # The optimistic transaction ------------------------------------------------------------
    def _atomically(self, decide: Callable[[Any], Any]) -> Any:
        """Run `decide(pipe)` under WATCH of the version; it reads, then queues writes after multi()."""
        for attempt in range(RETRIES):
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(VERSION)
                    result = decide(pipe)
                    if not pipe.explicit_transaction:
                        return result  # decided to change nothing: no write, no version bump
                    pipe.incr(VERSION)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    # Someone else changed the state; back off a little (with jitter) and decide again.
                    time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 10)))
        raise Conflict("ACD state changed too often to decide; try again")

    # Seats -----------------------------------------------------------------------------------
    def upsert_seat(self, extension: str, skills: dict[str, int], agent_id: int | None = None) -> None:
        def decide(pipe: Any) -> None:
            exists = pipe.exists(seat_key(extension))
            pipe.multi()
            fields = {"skills": json.dumps(skills), "agent_id": "" if agent_id is None else str(agent_id)}
            if not exists:
                fields |= {
                    "state": SeatState.LOGGED_OUT.value,
                    "since": repr(self.clock()),
                    "registered": "0",
                }
            pipe.hset(seat_key(extension), mapping=fields)
            pipe.sadd(SEATS, extension)

        self._atomically(decide)

    def set_registered(self, extension: str, registered: bool) -> None:
        """Whether the seat's phone is registered: an unregistered phone is never offered a call."""

        def decide(pipe: Any) -> None:
            pipe.multi()
            pipe.hset(seat_key(extension), "registered", "1" if registered else "0")

        self._atomically(decide)
        if registered:
            self.wake()

    def wake(self, source: str = "") -> None:
        """Tell the dispatchers that a caller may now reach a seat (best effort: they also poll).

        `source` names the worker that sends it, so that it does not wake itself."""
        try:
            self.redis.publish(WAKE, source or "-")
        except redis.RedisError:
            pass

    def seat(self, extension: str) -> Seat:
        raw = self.redis.hgetall(seat_key(extension))
        if not raw:
            raise KeyError(f"no seat {extension}")
        return seat_from(extension, raw)

    def seats(self) -> list[Seat]:
        return self._read_seats()

    # Reads go through a separate batched pipeline: they happen after WATCH, so any change
    # made meanwhile still bumps the version and fails the EXEC.
    def _read_seats(self) -> list[Seat]:
        extensions = sorted(self.redis.smembers(SEATS))
        batch = self.redis.pipeline(transaction=False)
        for ext in extensions:
            batch.hgetall(seat_key(ext))
        raws = batch.execute()
        return [seat_from(ext, raw) for ext, raw in zip(extensions, raws, strict=True) if raw]

    def seat_event(
        self, extension: str, event: SeatEvent, reason: str = "", *, call_id: str = "", wrap_up_s: float = 0.0
    ) -> Change:
        """Apply a seat event by the state table; `SeatTransitionError` if it is not allowed.

        With `call_id`, the event is about that call only (the softswitch answering, RONA, a hang-up):
        refused when the seat is no longer on it (it logged out meanwhile, say). `wrap_up_s` is how
        long a seat going to wrap-up stays there before it is ready by itself (`sweep`).
        """

        def decide(pipe: Any) -> Change:
            raw = pipe.hgetall(seat_key(extension))
            if not raw:
                raise KeyError(f"no seat {extension}")
            seat = seat_from(extension, raw)
            queue = pipe.hget(call_key(seat.call_id), "queue") if seat.call_id else None
            aht = pipe.hget(AHT, queue) if queue else None
            if call_id and seat.call_id != call_id:
                raise SeatTransitionError(f"seat {extension} is not on call {call_id} any more")
            target = next_state(seat.state, event)
            now = self.clock()
            fields: dict[str, str] = {"state": target.value, "since": repr(now), "reason": reason}
            if target is SeatState.READY:
                fields["idle_since"] = repr(now)
            if target is SeatState.WRAP_UP:
                fields["wrap_up_until"] = repr(now + wrap_up_s)
            if target not in (SeatState.OFFERED, SeatState.TALKING, SeatState.HELD, SeatState.WRAP_UP):
                fields["call_id"] = ""
            pipe.multi()
            if event in GIVE_BACK and seat.state is SeatState.OFFERED and seat.call_id:
                # The offered call goes back to the head of its queue (it keeps its place in time).
                self._requeue(pipe, seat.call_id)
            if event is SeatEvent.ANSWER:
                fields["calls_today"] = str(seat.calls_today + 1)
                pipe.hset(call_key(seat.call_id), "state", "bridged")
            if target is SeatState.WRAP_UP and queue:
                # What callers of this queue are told to expect: a moving average of talk times.
                talk = now - seat.since
                average = float(aht or talk)
                pipe.hset(AHT, queue, repr(average + AHT_WEIGHT * (talk - average)))
            pipe.hset(seat_key(extension), mapping=fields)
            return Change(extension, seat.state, target, reason, now, seat.call_id)

        change: Change = self._atomically(decide)
        if self.on_change:
            self.on_change(change)
        if change.to_state is SeatState.READY or change.from_state is SeatState.OFFERED:
            self.wake()
        return change

    def sweep(self) -> list[Change]:
        """Seats whose wrap-up time is over become ready (auto-ready); run by every dispatcher."""
        now = self.clock()

        def decide(pipe: Any) -> list[Change]:
            due = [
                seat
                for seat in self._read_seats()
                if seat.state is SeatState.WRAP_UP and seat.wrap_up_until <= now
            ]
            if not due:
                return []
            pipe.multi()
            for seat in due:
                pipe.hset(seat_key(seat.extension), mapping=self._ready_fields(now))
            return [Change(s.extension, S_WRAP, SeatState.READY, "", now, s.call_id) for s in due]

        changes: list[Change] = self._atomically(decide)
        for change in changes:
            if self.on_change:
                self.on_change(change)
        if changes:
            self.wake()
        return changes

    @staticmethod
    def _ready_fields(now: float) -> dict[str, str]:
        ready = SeatState.READY.value
        return {"state": ready, "since": repr(now), "idle_since": repr(now), "call_id": "", "reason": ""}
