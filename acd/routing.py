"""Which ready seat gets the next caller, and which caller goes first (no I/O).

Strategies, as call-centre practice names them: longest idle (the default and the fairest),
fewest calls today, round robin (remembering where it stopped), and skill level (the seat with
the best level for the queue's skill first, longest idle among equals). A seat is a candidate
only when it is ready, its phone is registered, and it has the queue's skill.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class Strategy(enum.StrEnum):
    LONGEST_IDLE = "longest_idle"
    FEWEST_CALLS = "fewest_calls"
    ROUND_ROBIN = "round_robin"
    SKILL_LEVEL = "skill_level"


@dataclass(frozen=True)
class SeatView:
    """What routing needs to know of a seat."""

    extension: str
    ready: bool
    registered: bool
    skills: dict[str, int]  # skill -> level (1 best); a missing skill is not served
    idle_since: float  # when it last became ready (epoch seconds)
    calls_today: int = 0


@dataclass(frozen=True)
class WaitingCall:
    call_id: str
    queue: str
    priority: int  # higher first (repeat callers with an open ticket, the elderly line)
    entered_at: float  # when it joined the queue


def candidates(seats: Sequence[SeatView], skill: str) -> list[SeatView]:
    return [s for s in seats if s.ready and s.registered and skill in s.skills]


def choose_seat(
    seats: Sequence[SeatView],
    skill: str,
    strategy: Strategy = Strategy.LONGEST_IDLE,
    last_extension: str = "",
) -> SeatView | None:
    """The seat to offer the next call of `skill` to, or None when nobody can take it."""
    pool = candidates(seats, skill)
    if not pool:
        return None
    if strategy is Strategy.FEWEST_CALLS:
        return min(pool, key=lambda s: (s.calls_today, s.idle_since, s.extension))
    if strategy is Strategy.ROUND_ROBIN:
        ordered = sorted(pool, key=lambda s: s.extension)
        after = [s for s in ordered if s.extension > last_extension]
        return (after or ordered)[0]
    if strategy is Strategy.SKILL_LEVEL:
        return min(pool, key=lambda s: (s.skills[skill], s.idle_since, s.extension))
    return min(pool, key=lambda s: (s.idle_since, s.extension))


def call_order(call: WaitingCall) -> tuple[int, float, str]:
    """Sort key: higher priority first, then the one waiting longest (fair across queues)."""
    return (-call.priority, call.entered_at, call.call_id)


def next_call(calls: Sequence[WaitingCall], skills: dict[str, int]) -> WaitingCall | None:
    """For a seat that just became ready: the most urgent caller among the queues it serves."""
    servable = [c for c in calls if c.queue in skills]
    return min(servable, key=call_order) if servable else None
