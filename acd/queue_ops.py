"""The call side of the live ACD state: queues, waiting callers, offers to seats, leaving.

A mixin of `acd.store.AcdStore`, which provides the optimistic transaction (`_atomically`) and
the seats; every method here decides inside that transaction, as the store's docstring says.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from acd.records import (
    AHT,
    QUEUES,
    S_OUT,
    S_WRAP,
    Change,
    Offer,
    QueueUnavailable,
    Seat,
    call_key,
    queue_key,
    seat_from,
    seat_key,
)
from acd.routing import Strategy, WaitingCall, call_order, choose_seat
from acd.seat_states import SeatState, SeatTransitionError

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)


class QueueOps:
    redis: redis.Redis
    clock: Callable[[], float]
    on_change: Callable[[Change], None] | None

    # Provided by AcdStore: the transaction core and the seats.
    def _atomically(self, decide: Callable[[Any], Any]) -> Any:
        raise NotImplementedError

    def _read_seats(self) -> list[Seat]:
        raise NotImplementedError

    def seats(self) -> list[Seat]:
        raise NotImplementedError

    def wake(self, source: str = "") -> None:
        raise NotImplementedError

    def enqueue(
        self,
        call_id: str,
        queue: str,
        priority: int = 0,
        caller: str = "",
        worker: str = "",
        max_waiting: int | None = None,
        entered_at: float | None = None,
    ) -> int:
        """Put a caller in a queue; returns its position (1 = next).

        With `max_waiting`, `QueueUnavailable` instead when no seat with the queue's skill is logged
        in or that many callers already wait (the caller is then offered the configured fallback).
        `entered_at` keeps an earlier place in line (a citizen called back after virtual hold).
        """
        now = self.clock() if entered_at is None else entered_at

        def decide(pipe: Any) -> None:
            if max_waiting is not None:
                staffed = [s for s in self._read_seats() if queue in s.skills and s.state is not S_OUT]
                if not staffed:
                    raise QueueUnavailable("nobody_logged_in")
                if pipe.zcard(queue_key(queue)) >= max_waiting:
                    raise QueueUnavailable("queue_full")
            pipe.multi()
            pipe.hset(
                call_key(call_id),
                mapping={
                    "queue": queue,
                    "priority": priority,
                    "entered_at": repr(now),
                    "caller": caller,
                    "worker": worker,
                    "state": "waiting",
                },
            )
            pipe.zadd(queue_key(queue), {call_id: self._score(priority, now)})
            pipe.sadd(QUEUES, queue)

        self._atomically(decide)
        self.wake()
        return self.position(call_id)

    @staticmethod
    def _score(priority: int, entered_at: float) -> float:
        # Priority first, then time: a higher priority always sorts before any waiting time.
        return -priority * 1e11 + entered_at

    def _requeue(self, pipe: Any, call_id: str) -> None:
        raw = self.redis.hgetall(call_key(call_id))
        # Only a call that was being offered goes back: one that is bridged to another seat (the
        # colleague an agent consulted did not answer) stays with its agent.
        if raw and raw.get("state") == "offered":
            score = self._score(int(raw.get("priority", 0)), float(raw["entered_at"]))
            pipe.zadd(queue_key(raw["queue"]), {call_id: score})
            pipe.hset(call_key(call_id), mapping={"state": "waiting", "seat": ""})

    def expected_wait(self, call_id: str, default_aht_s: float) -> float:
        """Seconds this waiting caller may still wait: callers ahead (and itself) times the queue's
        average handle time, shared by the seats logged in with its skill. 0 when not waiting."""
        raw = self.redis.hgetall(call_key(call_id))
        position = self.position(call_id)
        if not raw or not position:
            return 0.0
        queue = raw["queue"]
        aht = float(self.redis.hget(AHT, queue) or default_aht_s)
        staffed = sum(1 for s in self.seats() if queue in s.skills and s.state is not S_OUT)
        return position * aht / max(1, staffed)

    def offered_to(self, call_id: str) -> str:
        """The seat this call is offered to or bridged with now ("" when it waits or is gone)."""
        raw = self.redis.hgetall(call_key(call_id))
        return raw.get("seat", "") if raw and raw.get("state") in ("offered", "bridged") else ""

    def position(self, call_id: str) -> int:
        raw = self.redis.hgetall(call_key(call_id))
        if not raw or raw.get("state") != "waiting":
            return 0
        rank = self.redis.zrank(queue_key(raw["queue"]), call_id)
        return 0 if rank is None else int(rank) + 1

    def queue_stats(self) -> dict[str, dict[str, float]]:
        """Per queue: callers waiting and how long the longest has waited (for the wallboard)."""
        queues = sorted(self.redis.smembers(QUEUES))
        heads = self._read_waiting(queues, per_queue=1)
        counts = self.redis.pipeline(transaction=False)
        for queue in queues:
            counts.zcard(queue_key(queue))
        now = self.clock()
        longest = {call.queue: max(0.0, now - call.entered_at) for call in heads}
        return {
            queue: {"waiting": float(count), "longest_wait_s": round(longest.get(queue, 0.0), 1)}
            for queue, count in zip(queues, counts.execute(), strict=True)
        }

    def waiting(self, queue: str) -> list[str]:
        return list(self.redis.zrange(queue_key(queue), 0, -1))

    def leave(self, call_id: str, wrap_up_s: float = 0.0) -> Change | None:
        """The call is over or left the queue: out of the queue; a ringing seat is ready again, a
        seat still talking with it (its worker died) goes to wrap-up for `wrap_up_s`."""

        def decide(pipe: Any) -> Change | None:
            raw = pipe.hgetall(call_key(call_id))
            seat_ext = raw.get("seat", "") if raw else ""
            seat_raw = pipe.hgetall(seat_key(seat_ext)) if seat_ext else {}
            pipe.multi()
            if raw:
                pipe.zrem(queue_key(raw["queue"]), call_id)
                pipe.delete(call_key(call_id))
            if not seat_raw or seat_raw.get("call_id") != call_id:
                return None
            now = self.clock()
            state = SeatState(seat_raw.get("state", SeatState.LOGGED_OUT))
            if state is SeatState.OFFERED:
                ready = {"state": SeatState.READY.value, "since": repr(now), "call_id": "", "reason": ""}
                pipe.hset(seat_key(seat_ext), mapping=ready)
                return Change(seat_ext, state, SeatState.READY, "caller_left", now, call_id)
            if state in (SeatState.TALKING, SeatState.HELD):
                wrap = {"state": S_WRAP.value, "since": repr(now), "wrap_up_until": repr(now + wrap_up_s)}
                pipe.hset(seat_key(seat_ext), mapping=wrap)
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
        self,
        strategies: dict[str, Strategy] | None = None,
        limit: int = 100,
        worker: str | None = None,
        is_alive: Callable[[str], bool] | None = None,
    ) -> list[Offer]:
        """Offer waiting callers to ready seats, oldest (by priority) first; atomic as a whole.

        With `worker`, only that worker's callers are offered (each softswitch worker places the seat
        legs of the callers it holds), but the matching still runs over every waiting caller: a seat
        that an earlier caller of another worker would get is not given to this worker's later one.
        Those other workers are woken to claim their offers. Callers of a worker that `is_alive`
        says is gone (its calls died with it; its restart removes them) keep no seat from anyone.
        """
        strategies = strategies or {}
        others: list[Offer] = []

        def decide(pipe: Any) -> list[Offer]:
            ready = {s.extension: s for s in self._read_seats()}
            # Only the heads of the queues matter: a queue whose head finds no seat has none for the rest.
            calls = sorted(self._read_waiting(self.redis.smembers(QUEUES), per_queue=limit), key=call_order)
            skipped: set[str] = set()
            living: dict[str, bool] = {worker or "": True}
            while True:
                offers = self._match(
                    [c for c in calls if c.call_id not in skipped], dict(ready), strategies, limit
                )
                if worker is None or not offers:
                    break
                batch = self.redis.pipeline(transaction=False)
                for offer in offers:
                    batch.hget(call_key(offer.call_id), "worker")
                owners = [str(owner or "") for owner in batch.execute()]
                for owner in set(owners) - set(living):
                    living[owner] = is_alive(owner) if is_alive is not None else True
                dead = {o.call_id for o, owner in zip(offers, owners, strict=True) if not living[owner]}
                if not dead:
                    others[:] = [o for o, owner in zip(offers, owners, strict=True) if owner != worker]
                    offers = [o for o, owner in zip(offers, owners, strict=True) if owner == worker]
                    break
                skipped |= dead  # match again without them
            if not offers:
                return offers
            pipe.multi()
            now = self.clock()
            for offer in offers:
                _write_offer(pipe, offer, now)
            return offers

        offers: list[Offer] = self._atomically(decide)
        if others:
            self.wake(worker or "")
        if self.on_change:
            for offer in offers:
                self.on_change(
                    Change(
                        offer.extension, SeatState.READY, SeatState.OFFERED, "", self.clock(), offer.call_id
                    )
                )
        return offers

    def offer_to(self, call_id: str, extension: str) -> Offer:
        """Offer a waiting caller to one named seat (an agent's transfer to a colleague), atomically.

        `SeatTransitionError` if that seat is not ready with a registered phone or the caller is
        not waiting; the caller then keeps its place in the queue for whoever is next.
        """

        def decide(pipe: Any) -> Offer:
            _check_ready(pipe, extension)
            raw_call = pipe.hgetall(call_key(call_id))
            if not raw_call or raw_call.get("state") != "waiting":
                raise SeatTransitionError(f"call {call_id} is not waiting")
            offer = Offer(call_id, extension, raw_call["queue"])
            pipe.multi()
            _write_offer(pipe, offer, self.clock())
            return offer

        offer: Offer = self._atomically(decide)
        if self.on_change:
            self.on_change(
                Change(extension, SeatState.READY, SeatState.OFFERED, "transfer", self.clock(), call_id)
            )
        return offer

    def enqueue_offering(
        self, call_id: str, queue: str, prefer: str = "", **entry: Any
    ) -> tuple[int, Offer | None]:
        """`enqueue` (same keywords), then offered at once to seat `prefer` if it names one (an
        agent's transfer to a colleague). A seat that cannot take it leaves the caller waiting in
        the queue for whoever is next (logged). Returns the position and the offer, if any."""
        position = self.enqueue(call_id, queue, **entry)
        if not prefer:
            return position, None
        try:
            return position, self.offer_to(call_id, prefer)
        except (SeatTransitionError, KeyError) as exc:
            log.info("call %s: not offered to seat %s: %s", call_id, prefer, exc)
            return position, None

    def reserve(self, call_id: str, extension: str) -> Change:
        """Offer a bridged call's colleague seat for a consultation (attended transfer): the seat
        must be ready with its phone registered; it is then `offered` for that call, and its phone
        rung by the worker. `SeatTransitionError` otherwise. The call stays with its agent."""

        def decide(pipe: Any) -> Change:
            _check_ready(pipe, extension)
            now = self.clock()
            pipe.multi()
            _write_seat_offered(pipe, extension, call_id, now)
            return Change(extension, SeatState.READY, SeatState.OFFERED, "consult", now, call_id)

        change: Change = self._atomically(decide)
        if self.on_change:
            self.on_change(change)
        return change

    def hand_over(self, call_id: str, extension: str) -> None:
        """The call's seat is now `extension` (an attended transfer completed): the caller's leave
        wraps that seat up."""

        def decide(pipe: Any) -> None:
            exists = pipe.exists(call_key(call_id))
            pipe.multi()
            if exists:
                pipe.hset(call_key(call_id), "seat", extension)

        self._atomically(decide)

    @staticmethod
    def _match(
        calls: list[WaitingCall], seats: dict[str, Seat], strategies: dict[str, Strategy], limit: int
    ) -> list[Offer]:
        """Callers (in order) to seats by each queue's strategy; `seats` is used up as it goes."""
        offers: list[Offer] = []
        unservable: set[str] = set()
        for call in calls:
            if len(offers) == limit:
                break
            if call.queue in unservable:
                continue
            views = [s.view() for s in seats.values()]
            chosen = choose_seat(views, call.queue, strategies.get(call.queue, Strategy.LONGEST_IDLE))
            if chosen is None:
                unservable.add(call.queue)
                continue
            offers.append(Offer(call.call_id, chosen.extension, call.queue))
            seats[chosen.extension] = Seat(**{**seats[chosen.extension].__dict__, "state": SeatState.OFFERED})
        return offers

    def _read_waiting(self, queues: Iterable[str], per_queue: int) -> list[WaitingCall]:
        """The first `per_queue` callers of each queue; the score already orders them."""
        batch = self.redis.pipeline(transaction=False)
        names = sorted(queues)
        for queue in names:
            batch.zrange(queue_key(queue), 0, per_queue - 1, withscores=True)
        calls = []
        for queue, members in zip(names, batch.execute(), strict=True):
            for call_id, score in members:
                priority = -round(score / 1e11) if score < 0 else 0
                calls.append(WaitingCall(call_id, queue, priority, score + priority * 1e11))
        return calls


def _check_ready(pipe: Any, extension: str) -> None:
    """`KeyError` for an unknown seat, `SeatTransitionError` unless it is ready with its phone."""
    raw = pipe.hgetall(seat_key(extension))
    if not raw:
        raise KeyError(f"no seat {extension}")
    seat = seat_from(extension, raw)
    if seat.state is not SeatState.READY or not seat.registered:
        raise SeatTransitionError(f"seat {extension} cannot take a call now ({seat.state.value})")


def _write_seat_offered(pipe: Any, extension: str, call_id: str, now: float) -> None:
    offered = {"state": SeatState.OFFERED.value, "since": repr(now), "call_id": call_id}
    pipe.hset(seat_key(extension), mapping=offered)


def _write_offer(pipe: Any, offer: Offer, now: float) -> None:
    """The caller out of its queue and offered; the seat offered that call."""
    pipe.zrem(queue_key(offer.queue), offer.call_id)
    pipe.hset(call_key(offer.call_id), mapping={"state": "offered", "seat": offer.extension})
    _write_seat_offered(pipe, offer.extension, offer.call_id, now)
