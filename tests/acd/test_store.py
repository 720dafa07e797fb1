"""The live ACD state in real Redis: longest-idle offers, RONA, callers leaving, and no double offers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import redis

from acd.routing import Strategy
from acd.seat_states import SeatEvent as E
from acd.seat_states import SeatState as S
from acd.seat_states import SeatTransitionError
from acd.store import AcdStore, Change


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(redis_client: redis.Redis, clock: Clock) -> AcdStore:
    return AcdStore(redis_client, clock=clock)


def _ready(store: AcdStore, clock: Clock, *extensions: str, skills: dict[str, int] | None = None) -> None:
    for ext in extensions:
        store.upsert_seat(ext, skills or {"general": 1})
        store.set_registered(ext, True)
        store.seat_event(ext, E.LOGIN)
        store.seat_event(ext, E.READY)
        clock.tick()


def test_callers_are_offered_to_the_longest_idle_seat_and_the_third_waits(
    store: AcdStore, clock: Clock
) -> None:
    _ready(store, clock, "8002", "8001")  # 8002 has been ready longer
    for n in range(3):
        assert store.enqueue(f"c{n}", "general", caller=f"1380000000{n}") == n + 1
        clock.tick()
    offers = store.dispatch()
    assert [(o.call_id, o.extension) for o in offers] == [("c0", "8002"), ("c1", "8001")]
    assert store.position("c2") == 1 and store.dispatch() == []
    # 8002 answers, talks, hangs up, wraps up: then it takes the third caller.
    store.seat_event("8002", E.ANSWER)
    assert store.seat("8002").state is S.TALKING and store.seat("8002").calls_today == 1
    store.seat_event("8002", E.HANGUP)
    assert store.dispatch() == []  # wrap-up (话后处理) is not ready
    store.seat_event("8002", E.WRAP_UP_TIMEOUT)
    assert [(o.call_id, o.extension) for o in store.dispatch()] == [("c2", "8002")]


def test_unregistered_or_unskilled_seats_are_never_offered(store: AcdStore, clock: Clock) -> None:
    _ready(store, clock, "8001")
    _ready(store, clock, "8003", skills={"general": 1, "dialect": 1})
    store.set_registered("8003", False)
    store.enqueue("d1", "dialect")
    store.enqueue("e1", "enterprise")
    assert store.dispatch() == []
    store.set_registered("8003", True)
    assert [(o.call_id, o.extension) for o in store.dispatch()] == [("d1", "8003")]
    assert store.position("e1") == 1


def test_ring_no_answer_makes_the_seat_not_ready_and_the_call_keeps_its_place(
    store: AcdStore, clock: Clock
) -> None:
    _ready(store, clock, "8001", "8002")
    store.enqueue("early", "general")
    clock.tick(5)
    (offer,) = store.dispatch(limit=1)
    store.enqueue("late", "general")
    change = store.seat_event(offer.extension, E.RONA, reason="rona")
    assert change.to_state is S.NOT_READY and store.seat(offer.extension).reason == "rona"
    assert store.waiting("general") == ["early", "late"]  # back at the head
    other = "8002" if offer.extension == "8001" else "8001"
    assert [(o.call_id, o.extension) for o in store.dispatch()] == [("early", other)]


def test_a_caller_hanging_up_while_offered_frees_the_seat(store: AcdStore, clock: Clock) -> None:
    _ready(store, clock, "8001")
    store.enqueue("gone", "general")
    store.dispatch()
    change = store.leave("gone")
    assert change is not None and change.to_state is S.READY
    seat = store.seat("8001")
    assert seat.state is S.READY and seat.call_id == ""
    assert store.position("gone") == 0


def test_a_seat_logging_out_while_offered_returns_the_call(store: AcdStore, clock: Clock) -> None:
    _ready(store, clock, "8001")
    store.enqueue("c", "general")
    store.dispatch()
    store.seat_event("8001", E.LOGOUT)
    assert store.seat("8001").state is S.LOGGED_OUT and store.waiting("general") == ["c"]


def test_a_seat_on_a_call_refuses_what_it_cannot_do(store: AcdStore, clock: Clock) -> None:
    _ready(store, clock, "8001")
    store.enqueue("c", "general")
    store.dispatch()
    store.seat_event("8001", E.ANSWER)
    with pytest.raises(SeatTransitionError):
        store.seat_event("8001", E.LOGOUT)
    store.enqueue("c2", "general")
    assert store.dispatch() == []


def test_priority_callers_go_first_and_strategies_apply_per_queue(store: AcdStore, clock: Clock) -> None:
    _ready(store, clock, "8001", "8002", "8003")
    store.enqueue("normal", "general")
    clock.tick()
    store.enqueue("repeat", "general", priority=1)
    offers = store.dispatch(strategies={"general": Strategy.ROUND_ROBIN}, limit=1)
    assert offers[0].call_id == "repeat"


def test_changes_are_reported_for_the_history(redis_client: redis.Redis, clock: Clock) -> None:
    changes: list[Change] = []
    store = AcdStore(redis_client, clock=clock, on_change=changes.append)
    _ready(store, clock, "8001")
    assert [(c.from_state, c.to_state) for c in changes] == [
        (S.LOGGED_OUT, S.NOT_READY),
        (S.NOT_READY, S.READY),
    ]


RACER = textwrap.dedent(
    """
    import sys, time
    from hotline import bus
    from acd.store import AcdStore
    store = AcdStore(bus.connect(sys.argv[1]))
    worker = sys.argv[2] if len(sys.argv) > 2 else None  # claim only this worker's callers
    offers = []
    quiet_since = time.time()
    while time.time() - quiet_since < 1.0:  # race until nothing more can be offered for a second
        for offer in store.dispatch(limit=5, worker=worker):
            offers.append(f"{offer.call_id}={offer.extension}")
            quiet_since = time.time()
    print(" ".join(offers))
    """
)


def test_two_processes_dispatching_at_once_never_offer_one_seat_two_calls(
    store: AcdStore, clock: Clock, redis_url: str
) -> None:
    _ready(store, clock, *[f"80{n:02d}" for n in range(20)])
    for n in range(60):
        store.enqueue(f"call{n:02d}", "general")
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    racers = [
        subprocess.Popen([sys.executable, "-c", RACER, redis_url], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [racer.communicate(timeout=60)[0].split() for racer in racers]
    assert all(r.returncode == 0 for r in racers)
    offers = [pair.split("=") for result in results for pair in result]
    seats = [seat for _, seat in offers]
    assert len(offers) == 20, offers  # every seat got exactly one call, whoever offered it
    assert len(set(seats)) == 20
    assert len({call for call, _ in offers}) == 20
    assert all(store.seat(seat).state is S.OFFERED for seat in seats)
    assert len(store.waiting("general")) == 40


def test_two_workers_claiming_offers_for_their_own_callers_keep_everyones_place_and_never_share_a_seat(
    store: AcdStore, clock: Clock, redis_url: str
) -> None:
    _ready(store, clock, *[f"80{n:02d}" for n in range(10)])
    for n in range(30):  # the two workers' callers, interleaved in time
        store.enqueue(f"call{n:02d}", "general", worker=f"sip-worker-{n % 2}")
        clock.tick()
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, redis_url, f"sip-worker-{i}"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = [racer.communicate(timeout=60)[0].split() for racer in racers]
    offers = {call: seat for result in results for call, seat in (pair.split("=") for pair in result)}
    # The ten callers waiting longest got the ten seats, whichever worker holds them ...
    assert sorted(offers) == [f"call{n:02d}" for n in range(10)]
    assert len(set(offers.values())) == 10
    # ... and each worker claimed only its own.
    for i, result in enumerate(results):
        assert all(int(pair.split("=")[0][4:]) % 2 == i for pair in result)


def test_callers_of_a_worker_that_is_gone_hold_no_seat_from_the_living(store: AcdStore, clock: Clock) -> None:
    _ready(store, clock, "8001")
    store.enqueue("lost", "general", worker="sip-worker-0@a")  # waited longest, but its worker died
    clock.tick()
    store.enqueue("here", "general", worker="sip-worker-1@a")
    assert store.dispatch(worker="sip-worker-1@a") == []  # without a word on the living: its place
    offers = store.dispatch(worker="sip-worker-1@a", is_alive=lambda worker: worker != "sip-worker-0@a")
    assert [(o.call_id, o.extension) for o in offers] == [("here", "8001")]
    assert store.waiting("general") == ["lost"]  # until its worker's restart removes it
