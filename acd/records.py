"""The live ACD records in Redis: key names, and the seats, offers and changes read from them.

Shared by the store (`acd.store`: seats and the transaction core) and its call side
(`acd.queue_ops`: queues, offers, leaving). No I/O here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from acd.routing import SeatView
from acd.seat_states import SeatEvent, SeatState

VERSION = "acd:version"
SEATS = "acd:seats"
QUEUES = "acd:queues"
WAKE = "acd:wake"  # pub/sub: "something changed, dispatch now"
AHT = "acd:aht"  # queue -> average handle (talk) time, a moving average over answered calls
RETRIES = 50
AHT_WEIGHT = 0.2  # each answered call moves the average handle time a fifth of the way
S_WRAP, S_OUT = SeatState.WRAP_UP, SeatState.LOGGED_OUT
# Seat events that put the offered call back at the head of its queue.
GIVE_BACK = {SeatEvent.RONA, SeatEvent.LOGOUT, SeatEvent.CANCEL}


def seat_key(extension: str) -> str:
    return f"acd:seat:{extension}"


def call_key(call_id: str) -> str:
    return f"acd:call:{call_id}"


def queue_key(queue: str) -> str:
    return f"acd:queue:{queue}"


class Conflict(Exception):
    """The state kept changing under a decision; retried RETRIES times in vain."""


class Unavailable(Exception):
    """Something the ACD cannot do now, with a machine-readable `reason` the caller branches on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class QueueUnavailable(Unavailable):
    """Nobody can take a call of this queue: `reason` is nobody_logged_in or queue_full."""


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


def seat_from(extension: str, raw: dict[str, str]) -> Seat:
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
