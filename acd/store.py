"""The live ACD state in Redis: seats, waiting calls, and atomic offers (the only Redis code in acd).

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis

from acd.routing import SeatView, Strategy, WaitingCall, call_order, choose_seat
from acd.seat_states import SeatEvent, SeatState, SeatTransitionError, next_state

VERSION = "acd:version"
SEATS = "acd:seats"
QUEUES = "acd:queues"
WAKE = "acd:wake"  # pub/sub: "something changed, dispatch now"
AHT = "acd:aht"  # queue -> average handle (talk) time, a moving average over answered calls
RETRIES = 50
AHT_WEIGHT = 0.2  # each answered call moves the average handle time a fifth of the way
S_WRAP, S_OUT = SeatState.WRAP_UP, SeatState.LOGGED_OUT
# Seat events that put the offered call back at the head of its queue.
_GIVE_BACK = {SeatEvent.RONA, SeatEvent.LOGOUT, SeatEvent.CANCEL}


def _seat_key(extension: str) -> str:
    return f"acd:seat:{extension}"


def _call_key(call_id: str) -> str:
    return f"acd:call:{call_id}"


def _queue_key(queue: str) -> str:
    return f"acd:queue:{queue}"


class Conflict(Exception):
    """The state kept changing under a decision; retried RETRIES times in vain."""


class QueueUnavailable(Exception):
    """Nobody can take a call of this queue: `reason` is nobody_logged_in or queue_full."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Seat:
    extension: str
    state: SeatState
    reason: str
    since: float
    idle_since: float
    calls_today: int
    skills: dict[str, int]
    registered: bool
    call_id: str
    agent_id: int | None
    wrap_up_until: float = 0.0  # while in wrap-up: when it becomes ready by itself

    def view(self) -> SeatView:
        return SeatView(
            self.extension,
            self.state is SeatState.READY,
            self.registered,
            self.skills,
            self.idle_since,
            self.calls_today,
        )


@dataclass(frozen=True)
class Offer:
    call_id: str
    extension: str
    queue: str


@dataclass(frozen=True)
class Change:
    """A seat state change, for the SQL history and the wallboard."""

    extension: str
    from_state: SeatState
    to_state: SeatState
    reason: str
    at: float
    call_id: str = ""


def _seat_from(extension: str, raw: dict[str, str]) -> Seat:
    return Seat(
        extension=extension,
        state=SeatState(raw.get("state", SeatState.LOGGED_OUT)),
        reason=raw.get("reason", ""),
        since=float(raw.get("since", 0)),
        idle_since=float(raw.get("idle_since", 0)),
        calls_today=int(raw.get("calls_today", 0)),
        skills=json.loads(raw.get("skills", "{}")),
        registered=raw.get("registered") == "1",
        call_id=raw.get("call_id", ""),
        agent_id=int(raw["agent_id"]) if raw.get("agent_id") else None,
        wrap_up_until=float(raw.get("wrap_up_until") or 0),
    )


class AcdStore:
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
            exists = pipe.exists(_seat_key(extension))
            pipe.multi()
            fields = {"skills": json.dumps(skills), "agent_id": "" if agent_id is None else str(agent_id)}
            if not exists:
                fields |= {
                    "state": SeatState.LOGGED_OUT.value,
                    "since": repr(self.clock()),
                    "registered": "0",
                }
            pipe.hset(_seat_key(extension), mapping=fields)
            pipe.sadd(SEATS, extension)

        self._atomically(decide)

    def set_registered(self, extension: str, registered: bool) -> None:
        """Whether the seat's phone is registered: an unregistered phone is never offered a call."""

        def decide(pipe: Any) -> None:
            pipe.multi()
            pipe.hset(_seat_key(extension), "registered", "1" if registered else "0")

        self._atomically(decide)
        if registered:
            self.wake()

    def wake(self) -> None:
        """Tell the dispatchers that a caller may now reach a seat (best effort: they also poll)."""
        try:
            self.redis.publish(WAKE, "1")
        except redis.RedisError:
            pass

    def seat(self, extension: str) -> Seat:
        raw = self.redis.hgetall(_seat_key(extension))
        if not raw:
            raise KeyError(f"no seat {extension}")
        return _seat_from(extension, raw)

    def seats(self) -> list[Seat]:
        return self._read_seats()

    # Reads go through a separate batched pipeline: they happen after WATCH, so any change
    # made meanwhile still bumps the version and fails the EXEC.
    def _read_seats(self) -> list[Seat]:
        extensions = sorted(self.redis.smembers(SEATS))
        batch = self.redis.pipeline(transaction=False)
        for ext in extensions:
            batch.hgetall(_seat_key(ext))
        raws = batch.execute()
        return [_seat_from(ext, raw) for ext, raw in zip(extensions, raws, strict=True) if raw]

    def seat_event(
        self, extension: str, event: SeatEvent, reason: str = "", *, call_id: str = "", wrap_up_s: float = 0.0
    ) -> Change:
        """Apply a seat event by the state table; `SeatTransitionError` if it is not allowed.

        With `call_id`, the event is about that call only (the softswitch answering, RONA, a hang-up):
        refused when the seat is no longer on it (it logged out meanwhile, say). `wrap_up_s` is how
        long a seat going to wrap-up stays there before it is ready by itself (`sweep`).
        """

        def decide(pipe: Any) -> Change:
            raw = pipe.hgetall(_seat_key(extension))
            if not raw:
                raise KeyError(f"no seat {extension}")
            seat = _seat_from(extension, raw)
            queue = pipe.hget(_call_key(seat.call_id), "queue") if seat.call_id else None
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
            if event in _GIVE_BACK and seat.state is SeatState.OFFERED and seat.call_id:
                # The offered call goes back to the head of its queue (it keeps its place in time).
                self._requeue(pipe, seat.call_id)
            if event is SeatEvent.ANSWER:
                fields["calls_today"] = str(seat.calls_today + 1)
                pipe.hset(_call_key(seat.call_id), "state", "bridged")
            if target is SeatState.WRAP_UP and queue:
                # What callers of this queue are told to expect: a moving average of talk times.
                talk = now - seat.since
                average = float(aht or talk)
                pipe.hset(AHT, queue, repr(average + AHT_WEIGHT * (talk - average)))
            pipe.hset(_seat_key(extension), mapping=fields)
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
                pipe.hset(_seat_key(seat.extension), mapping=self._ready_fields(now))
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

    # Calls -----------------------------------------------------------------------------------
    def enqueue(
        self,
        call_id: str,
        queue: str,
        priority: int = 0,
        caller: str = "",
        worker: str = "",
        max_waiting: int | None = None,
    ) -> int:
        """Put a caller in a queue; returns its position (1 = next).

        With `max_waiting`, `QueueUnavailable` instead when no seat with the queue's skill is logged
        in or that many callers already wait (the caller is then offered the configured fallback).
        """
        now = self.clock()

        def decide(pipe: Any) -> None:
            if max_waiting is not None:
                staffed = [s for s in self._read_seats() if queue in s.skills and s.state is not S_OUT]
                if not staffed:
                    raise QueueUnavailable("nobody_logged_in")
                if pipe.zcard(_queue_key(queue)) >= max_waiting:
                    raise QueueUnavailable("queue_full")
            pipe.multi()
            pipe.hset(
                _call_key(call_id),
                mapping={
                    "queue": queue,
                    "priority": priority,
                    "entered_at": repr(now),
                    "caller": caller,
                    "worker": worker,
                    "state": "waiting",
                },
            )
            pipe.zadd(_queue_key(queue), {call_id: self._score(priority, now)})
            pipe.sadd(QUEUES, queue)

        self._atomically(decide)
        self.wake()
        return self.position(call_id)

    @staticmethod
    def _score(priority: int, entered_at: float) -> float:
        # Priority first, then time: a higher priority always sorts before any waiting time.
        return -priority * 1e11 + entered_at

    def _requeue(self, pipe: Any, call_id: str) -> None:
        raw = self.redis.hgetall(_call_key(call_id))
        if raw:
            score = self._score(int(raw.get("priority", 0)), float(raw["entered_at"]))
            pipe.zadd(_queue_key(raw["queue"]), {call_id: score})
            pipe.hset(_call_key(call_id), mapping={"state": "waiting", "seat": ""})

    def expected_wait(self, call_id: str, default_aht_s: float) -> float:
        """Seconds this waiting caller may still wait: callers ahead (and itself) times the queue's
        average handle time, shared by the seats logged in with its skill. 0 when not waiting."""
        raw = self.redis.hgetall(_call_key(call_id))
        position = self.position(call_id)
        if not raw or not position:
            return 0.0
        queue = raw["queue"]
        aht = float(self.redis.hget(AHT, queue) or default_aht_s)
        staffed = sum(1 for s in self.seats() if queue in s.skills and s.state is not S_OUT)
        return position * aht / max(1, staffed)

    def offered_to(self, call_id: str) -> str:
        """The seat this call is offered to or bridged with now ("" when it waits or is gone)."""
        raw = self.redis.hgetall(_call_key(call_id))
        return raw.get("seat", "") if raw and raw.get("state") in ("offered", "bridged") else ""

    def position(self, call_id: str) -> int:
        raw = self.redis.hgetall(_call_key(call_id))
        if not raw or raw.get("state") != "waiting":
            return 0
        rank = self.redis.zrank(_queue_key(raw["queue"]), call_id)
        return 0 if rank is None else int(rank) + 1

    def queue_stats(self) -> dict[str, dict[str, float]]:
        """Per queue: callers waiting and how long the longest has waited (for the wallboard)."""
        queues = sorted(self.redis.smembers(QUEUES))
        heads = self._read_waiting(queues, per_queue=1)
        counts = self.redis.pipeline(transaction=False)
        for queue in queues:
            counts.zcard(_queue_key(queue))
        now = self.clock()
        longest = {call.queue: max(0.0, now - call.entered_at) for call in heads}
        return {
            queue: {"waiting": float(count), "longest_wait_s": round(longest.get(queue, 0.0), 1)}
            for queue, count in zip(queues, counts.execute(), strict=True)
        }

    def waiting(self, queue: str) -> list[str]:
        return list(self.redis.zrange(_queue_key(queue), 0, -1))

    def leave(self, call_id: str, wrap_up_s: float = 0.0) -> Change | None:
        """The call is over or left the queue: out of the queue; a ringing seat is ready again, a
        seat still talking with it (its worker died) goes to wrap-up for `wrap_up_s`."""

        def decide(pipe: Any) -> Change | None:
            raw = pipe.hgetall(_call_key(call_id))
            seat_ext = raw.get("seat", "") if raw else ""
            seat_raw = pipe.hgetall(_seat_key(seat_ext)) if seat_ext else {}
            pipe.multi()
            if raw:
                pipe.zrem(_queue_key(raw["queue"]), call_id)
                pipe.delete(_call_key(call_id))
            if not seat_raw or seat_raw.get("call_id") != call_id:
                return None
            now = self.clock()
            state = SeatState(seat_raw.get("state", SeatState.LOGGED_OUT))
            if state is SeatState.OFFERED:
                ready = {"state": SeatState.READY.value, "since": repr(now), "call_id": "", "reason": ""}
                pipe.hset(_seat_key(seat_ext), mapping=ready)
                return Change(seat_ext, state, SeatState.READY, "caller_left", now, call_id)
            if state in (SeatState.TALKING, SeatState.HELD):
                wrap = {"state": S_WRAP.value, "since": repr(now), "wrap_up_until": repr(now + wrap_up_s)}
                pipe.hset(_seat_key(seat_ext), mapping=wrap)
                return Change(seat_ext, state, S_WRAP, "call_lost", now, call_id)
            return None

        change: Change | None = self._atomically(decide)
        if change and self.on_change:
            self.on_change(change)
        if change and change.to_state is SeatState.READY:
            self.wake()
        return change

    # Matching callers and seats --------------------------------------------------------------
    def dispatch(
        self, strategies: dict[str, Strategy] | None = None, limit: int = 100, worker: str | None = None
    ) -> list[Offer]:
        """Offer waiting callers to ready seats, oldest (by priority) first; atomic as a whole.

        With `worker`, only that worker's callers are offered (each softswitch worker places the seat
        legs of the callers it holds), but the matching still runs over every waiting caller: a seat
        that an earlier caller of another worker would get is not given to this worker's later one.
        Those other workers are woken to claim their offers.
        """
        strategies = strategies or {}
        others: list[Offer] = []

        def decide(pipe: Any) -> list[Offer]:
            seats = {s.extension: s for s in self._read_seats()}
            # Only the heads of the queues matter: a queue whose head finds no seat has none for the rest.
            calls = self._read_waiting(self.redis.smembers(QUEUES), per_queue=limit)
            offers: list[Offer] = []
            unservable: set[str] = set()
            for call in sorted(calls, key=call_order):
                if len(offers) == limit:
                    break
                if call.queue in unservable:
                    continue
                views = [s.view() for s in seats.values()]
                strategy = strategies.get(call.queue, Strategy.LONGEST_IDLE)
                chosen = choose_seat(views, call.queue, strategy)
                if chosen is None:
                    unservable.add(call.queue)
                    continue
                offers.append(Offer(call.call_id, chosen.extension, call.queue))
                seat = seats[chosen.extension]
                seats[chosen.extension] = Seat(**{**seat.__dict__, "state": SeatState.OFFERED})
            others.clear()
            if worker is not None and offers:
                owners = self.redis.pipeline(transaction=False)
                for offer in offers:
                    owners.hget(_call_key(offer.call_id), "worker")
                mine = [owner == worker for owner in owners.execute()]
                others.extend(o for o, m in zip(offers, mine, strict=True) if not m)
                offers = [o for o, m in zip(offers, mine, strict=True) if m]
            if not offers:
                return offers
            pipe.multi()
            now = self.clock()
            for offer in offers:
                pipe.zrem(_queue_key(offer.queue), offer.call_id)
                pipe.hset(_call_key(offer.call_id), mapping={"state": "offered", "seat": offer.extension})
                pipe.hset(
                    _seat_key(offer.extension),
                    mapping={"state": SeatState.OFFERED.value, "since": repr(now), "call_id": offer.call_id},
                )
            return offers

        offers: list[Offer] = self._atomically(decide)
        if others:
            self.wake()
        if self.on_change:
            for offer in offers:
                self.on_change(
                    Change(
                        offer.extension, SeatState.READY, SeatState.OFFERED, "", self.clock(), offer.call_id
                    )
                )
        return offers

    def _read_waiting(self, queues: Iterable[str], per_queue: int) -> list[WaitingCall]:
        """The first `per_queue` callers of each queue; the score already orders them."""
        batch = self.redis.pipeline(transaction=False)
        names = sorted(queues)
        for queue in names:
            batch.zrange(_queue_key(queue), 0, per_queue - 1, withscores=True)
        calls = []
        for queue, members in zip(names, batch.execute(), strict=True):
            for call_id, score in members:
                priority = -round(score / 1e11) if score < 0 else 0
                calls.append(WaitingCall(call_id, queue, priority, score + priority * 1e11))
        return calls
