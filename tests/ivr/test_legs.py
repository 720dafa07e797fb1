"""A worker's legs: it never takes more callers than it has legs, and a leg's life only moves forward."""

from __future__ import annotations

import pytest

from ivr.legs import Leg, LegEvent, LegKind, LegState, LegTable, TransitionError


def _leg(n: int = 0) -> Leg:
    return Leg(
        sip_call_id=f"c{n}@host", caller="13800138000", caller_uri="sip:13800138000@host", called="12345"
    )


def test_each_caller_keeps_a_leg_for_its_seat_and_a_full_table_refuses_callers_until_one_ends() -> None:
    table = LegTable(capacity=4)
    first, second = _leg(1), _leg(2)
    table.add(first)
    assert table.can_accept_caller()
    table.add(second)
    # Two legs are free, but they are the two callers' seat legs.
    assert not table.can_accept_caller() and table.free == 2
    seat = Leg(sip_call_id="s1@host", caller="ivr", caller_uri="", called="8001", kind=LegKind.SEAT)
    table.add(seat)
    third = _leg(3)
    table.add(third)  # the table itself only counts: admission was decided before answering
    with pytest.raises(TransitionError):
        table.add(_leg(4))

    table.remove(third.call_id)
    assert table.remove(second.call_id) is second
    assert table.can_accept_caller() and list(table) == [first, seat]


def test_a_leg_rings_then_is_answered_then_ends_and_never_goes_back() -> None:
    leg = _leg()
    assert leg.state is LegState.RINGING and leg.talk_seconds == 0.0
    assert leg.apply(LegEvent.ANSWER) is LegState.ANSWERED and leg.answered_at is not None
    assert leg.apply(LegEvent.HANG_UP) is LegState.ENDED and leg.ended_at is not None
    with pytest.raises(TransitionError, match="answer not allowed when ended"):
        leg.apply(LegEvent.ANSWER)


def test_a_caller_who_hangs_up_while_ringing_ends_without_talk_time() -> None:
    leg = _leg()
    assert leg.apply(LegEvent.HANG_UP) is LegState.ENDED
    assert leg.talk_seconds == 0.0 and leg.answered_at is None
    assert len(leg.call_id) == 32 and leg.call_id != _leg().call_id
