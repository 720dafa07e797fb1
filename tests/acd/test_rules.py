"""ACD rules: seat states never stick, routing strategies behave as documented, staffing sums."""

from __future__ import annotations

import math

import pytest

from acd.routing import SeatView, Strategy, WaitingCall, choose_seat, next_call
from acd.seat_states import SeatEvent as E
from acd.seat_states import SeatState as S
from acd.seat_states import SeatTransitionError, next_state
from acd.staffing import Load, erlang_c, forecast_a, forecast_c, seats_needed


def _walk(events: list[E], state: S = S.LOGGED_OUT) -> S:
    for event in events:
        state = next_state(state, event)
    return state


@pytest.mark.parametrize(
    ("events", "end"),
    [
        ([E.LOGIN, E.READY, E.OFFER, E.ANSWER, E.HOLD, E.UNHOLD, E.HANGUP, E.WRAP_UP_TIMEOUT], S.READY),
        ([E.LOGIN, E.READY, E.OFFER, E.RONA], S.NOT_READY),  # no answer: not ready, never stuck ringing
        ([E.LOGIN, E.READY, E.OFFER, E.CANCEL], S.READY),  # the caller gave up while it rang
        ([E.LOGIN, E.READY, E.OFFER, E.LOGOUT], S.LOGGED_OUT),
        ([E.LOGIN, E.READY, E.OFFER, E.ANSWER, E.HANGUP, E.NOT_READY, E.LOGOUT], S.LOGGED_OUT),
    ],
)
def test_seat_state_paths(events: list[E], end: S) -> None:
    assert _walk(events) == end


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.TALKING, E.OFFER),
        (S.OFFERED, E.OFFER),
        (S.NOT_READY, E.OFFER),
        (S.TALKING, E.LOGOUT),
        (S.LOGGED_OUT, E.READY),
    ],
)
def test_a_busy_or_absent_seat_is_never_offered_and_bad_events_are_refused(state: S, event: E) -> None:
    with pytest.raises(SeatTransitionError, match=f"'{state.value}' cannot take '{event.value}'"):
        next_state(state, event)


def _seat(
    ext: str,
    idle: float,
    *,
    ready: bool = True,
    registered: bool = True,
    calls: int = 0,
    skills: dict[str, int] | None = None,
) -> SeatView:
    return SeatView(ext, ready, registered, skills or {"general": 1}, idle, calls)


SEATS = [
    _seat("8001", idle=300, calls=5),
    _seat("8002", idle=100, calls=9, skills={"general": 2, "enterprise": 1}),
    _seat("8003", idle=200, calls=2, skills={"general": 1, "dialect": 1}),
    _seat("8004", idle=50, ready=False),
    _seat("8005", idle=10, registered=False),
]


def test_longest_idle_is_the_default_and_skips_unready_and_unregistered_seats() -> None:
    assert choose_seat(SEATS, "general").extension == "8002"  # type: ignore[union-attr]


def test_strategies() -> None:
    assert choose_seat(SEATS, "general", Strategy.FEWEST_CALLS).extension == "8003"  # type: ignore[union-attr]
    assert choose_seat(SEATS, "general", Strategy.ROUND_ROBIN, "8001").extension == "8002"  # type: ignore[union-attr]
    assert choose_seat(SEATS, "general", Strategy.ROUND_ROBIN, "8003").extension == "8001"  # type: ignore[union-attr]
    assert choose_seat(SEATS, "general", Strategy.SKILL_LEVEL).extension == "8003"  # type: ignore[union-attr]
    assert choose_seat(SEATS, "enterprise").extension == "8002"  # type: ignore[union-attr]
    assert choose_seat(SEATS, "sign-language") is None


def test_the_longest_waiting_caller_goes_first_across_queues_priority_before_all() -> None:
    calls = [
        WaitingCall("a", "general", 0, entered_at=100),
        WaitingCall("b", "dialect", 0, entered_at=90),
        WaitingCall("c", "general", 1, entered_at=120),  # a repeat caller with an open ticket
        WaitingCall("d", "enterprise", 5, entered_at=10),
    ]
    assert next_call(calls, {"general": 1, "dialect": 1}).call_id == "c"  # type: ignore[union-attr]
    assert next_call(calls[:2], {"general": 1, "dialect": 1}).call_id == "b"  # type: ignore[union-attr]
    assert next_call(calls, {"sign-language": 1}) is None


def test_erlang_c_matches_the_tables() -> None:
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(11, 10.0) == pytest.approx(0.6821, abs=1e-4)
    assert erlang_c(12, 10.0) == pytest.approx(0.4494, abs=1e-4)
    assert erlang_c(10, 10.0) == 1.0  # overloaded: everybody waits


def test_erlang_a_with_endless_patience_is_erlang_c_and_patience_lowers_the_need() -> None:
    load = Load(calls_per_hour=120, aht_s=300)
    for seats in (11, 12, 13, 15):
        c, a = forecast_c(load, seats, 15), forecast_a(Load(120, 300, patience_s=1e7), seats, 15)
        assert a.service_level == pytest.approx(c.service_level, abs=1e-3)
        assert a.asa_s == pytest.approx(c.asa_s, rel=1e-2)
    impatient = forecast_a(Load(120, 300, patience_s=60), 12, 15)
    assert (
        0 < impatient.abandon_rate < 0.2 and impatient.service_level > forecast_c(load, 12, 15).service_level
    )
    assert seats_needed(load, 15, 0.8, model="C").seats == 14
    assert seats_needed(Load(120, 300, 60), 15, 0.8).seats <= 14
    assert math.isinf(forecast_c(load, 10, 15).asa_s)
