"""Call legs held by one worker: their states, the allowed transitions and the worker's capacity.

No I/O and no pjsua2 here: the SIP edge reports what happened, this module decides whether it
may happen and keeps the count a heartbeat and an admission decision read.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

log = logging.getLogger(__name__)


class LegState(StrEnum):
    RINGING = "ringing"  # INVITE accepted, not yet answered
    ANSWERED = "answered"  # 200 OK sent
    ENDED = "ended"  # hung up (by either side) or cancelled


class LegKind(StrEnum):
    CALLER = "caller"  # a citizen's call (incoming, or a callback placed to them)
    SEAT = "seat"  # the call to an agent's phone, bridged to a caller in the same worker


class LegEvent(StrEnum):
    ANSWER = "answer"
    HANG_UP = "hang_up"


class TransitionError(Exception):
    """A leg was asked to do something its state does not allow."""


# state -> event -> next state; anything missing is a bug worth a loud error.
TRANSITIONS: dict[LegState, dict[LegEvent, LegState]] = {
    # HANG_UP while ringing: the caller gave up (CANCEL) before the answer.
    LegState.RINGING: {LegEvent.ANSWER: LegState.ANSWERED, LegEvent.HANG_UP: LegState.ENDED},
    LegState.ANSWERED: {LegEvent.HANG_UP: LegState.ENDED},
    LegState.ENDED: {},
}


@dataclass
class Leg:
    """One SIP call leg as the hotline sees it; `call_id` is the hotline's own id for the call."""

    sip_call_id: str
    caller: str
    caller_uri: str
    called: str
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    kind: LegKind = LegKind.CALLER
    state: LegState = LegState.RINGING
    arrived_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None

    def apply(self, event: LegEvent) -> LegState:
        """Move to the next state for `event`, or raise `TransitionError`."""
        target = TRANSITIONS[self.state].get(event)
        if target is None:
            raise TransitionError(f"leg {self.call_id}: {event.value} not allowed when {self.state.value}")
        log.debug("leg %s: %s -> %s -> %s", self.call_id, self.state.value, event.value, target.value)
        self.state = target
        now = time.time()
        if target is LegState.ANSWERED:
            self.answered_at = now
        elif target is LegState.ENDED:
            self.ended_at = now
        return target

    @property
    def talk_seconds(self) -> float:
        if self.answered_at is None:
            return 0.0
        return max(0.0, (self.ended_at or time.time()) - self.answered_at)


class LegTable:
    """The legs a worker holds, bounded by its capacity (pjsua2 wheel: at most 4 per process)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a worker needs room for at least one leg")
        self.capacity = capacity
        self._legs: dict[str, Leg] = {}

    def __len__(self) -> int:
        return len(self._legs)

    @property
    def free(self) -> int:
        return self.capacity - len(self._legs)

    def can_accept_caller(self) -> bool:
        """Room for one more caller and, later, its seat: a caller is bridged to its agent in the
        worker that holds it, so each caller keeps one leg reserved for its seat leg."""
        callers = sum(1 for leg in self._legs.values() if leg.kind is LegKind.CALLER)
        seats = len(self._legs) - callers
        committed = max(2 * callers, callers + seats)  # a seat leg may briefly outlive its caller
        return self.capacity - committed >= 2

    def can_add_party(self) -> bool:
        """Room for one more leg (a supervisor listening in, a third party) beside the leg every
        caller keeps for its seat."""
        callers = sum(1 for leg in self._legs.values() if leg.kind is LegKind.CALLER)
        committed = max(2 * callers, len(self._legs))
        return self.capacity - committed >= 1

    def add(self, leg: Leg) -> None:
        if self.free < 1:
            raise TransitionError(f"no free leg for {leg.call_id}: {len(self._legs)}/{self.capacity} in use")
        self._legs[leg.call_id] = leg

    def remove(self, call_id: str) -> Leg | None:
        return self._legs.pop(call_id, None)

    def get(self, call_id: str) -> Leg | None:
        return self._legs.get(call_id)

    def __iter__(self) -> Iterator[Leg]:
        return iter(list(self._legs.values()))
