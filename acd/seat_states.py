"""Seat states and the transitions between them (no I/O).

`logged_out → not_ready ⇄ ready → offered → talking ⇄ held → wrap_up → ready`, plus RONA
(ring, no answer: the seat goes not ready), a caller giving up while the seat rings, and logout.
A seat on a call cannot log out or be offered another call: the table has no such transition,
and anything not in the table is refused with a clear error.
"""

from __future__ import annotations

import enum


class SeatState(enum.StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"  # 示闲
    NOT_READY = "not_ready"  # 示忙 (with a reason)
    OFFERED = "offered"  # the phone rings
    TALKING = "talking"
    HELD = "held"
    WRAP_UP = "wrap_up"  # 话后处理


class SeatEvent(enum.StrEnum):
    LOGIN = "login"
    READY = "ready"
    NOT_READY = "not_ready"
    OFFER = "offer"
    ANSWER = "answer"
    RONA = "rona"  # ring, no answer
    CANCEL = "cancel"  # the caller hung up while the seat was ringing
    HOLD = "hold"
    UNHOLD = "unhold"
    HANGUP = "hangup"
    WRAP_UP_TIMEOUT = "wrap_up_timeout"
    LOGOUT = "logout"


S, E = SeatState, SeatEvent

TRANSITIONS: dict[tuple[SeatState, SeatEvent], SeatState] = {
    (S.LOGGED_OUT, E.LOGIN): S.NOT_READY,
    (S.NOT_READY, E.READY): S.READY,
    (S.NOT_READY, E.NOT_READY): S.NOT_READY,  # another reason
    (S.READY, E.NOT_READY): S.NOT_READY,
    (S.READY, E.OFFER): S.OFFERED,
    (S.OFFERED, E.ANSWER): S.TALKING,
    (S.OFFERED, E.RONA): S.NOT_READY,
    (S.OFFERED, E.CANCEL): S.READY,
    (S.OFFERED, E.LOGOUT): S.LOGGED_OUT,  # the call goes back to the head of its queue
    (S.TALKING, E.HOLD): S.HELD,
    (S.HELD, E.UNHOLD): S.TALKING,
    (S.TALKING, E.HANGUP): S.WRAP_UP,
    (S.HELD, E.HANGUP): S.WRAP_UP,
    (S.WRAP_UP, E.READY): S.READY,
    (S.WRAP_UP, E.NOT_READY): S.NOT_READY,
    (S.WRAP_UP, E.WRAP_UP_TIMEOUT): S.READY,  # auto-ready after the configured wrap-up time
    (S.READY, E.LOGOUT): S.LOGGED_OUT,
    (S.NOT_READY, E.LOGOUT): S.LOGGED_OUT,
    (S.WRAP_UP, E.LOGOUT): S.LOGGED_OUT,
}

# States in which the seat holds (or is being given) a call.
ON_A_CALL = {S.OFFERED, S.TALKING, S.HELD}

# Reasons shown on the not-ready button (示忙原因); RONA's is set by the system.
NOT_READY_REASONS = {"break": "小休", "meeting": "会议", "training": "培训", "meal": "用餐", "rona": "未接听"}


class SeatTransitionError(Exception):
    """An event that the seat's state does not allow."""


def next_state(state: SeatState, event: SeatEvent) -> SeatState:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        allowed = sorted(e.value for (s, e) in TRANSITIONS if s == state)
        raise SeatTransitionError(
            f"seat in state '{state.value}' cannot take '{event.value}' (allowed: {', '.join(allowed)})"
        ) from None
