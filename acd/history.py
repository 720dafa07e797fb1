"""Seat changes leave the live store for the durable record and the screens.

Every `Change` the store reports becomes a `SeatEvent` row (so time in each state adds up
exactly, whatever process made the change) and a bus event for the wallboard and the agent's
own desk.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Seat, SeatEvent
from acd.store import Change
from hotline.bus import EventBus
from hotline.db import transaction

SUPERVISORS = "role:supervisor"


def record(session: Session, change: Change) -> SeatEvent | None:
    seat = session.scalar(select(Seat).where(Seat.extension == change.extension))
    if seat is None:
        return None
    event = SeatEvent(
        seat_id=seat.id,
        agent_id=seat.agent_id,
        at=dt.datetime.fromtimestamp(change.at, dt.UTC),
        from_state=change.from_state.value,
        to_state=change.to_state.value,
        reason=change.reason,
    )
    session.add(event)
    return event


def publish(bus: EventBus, change: Change, agent_id: int | None) -> None:
    rooms = (SUPERVISORS, *((f"user:{agent_id}",) if agent_id is not None else ()))
    bus.publish(
        "seat.changed",
        {
            "extension": change.extension,
            "from": change.from_state.value,
            "state": change.to_state.value,
            "reason": change.reason,
            "at": change.at,
            "call_id": change.call_id,
        },
        rooms=rooms,
    )


class ChangeRecorder:
    """An `AcdStore(on_change=...)` callback: SQL history first, then the screens."""

    def __init__(self, factory: sessionmaker[Session], bus: EventBus) -> None:
        self.factory = factory
        self.bus = bus

    def __call__(self, change: Change) -> None:
        with transaction(self.factory) as session:
            event = record(session, change)
            agent_id = event.agent_id if event is not None else None
        publish(self.bus, change, agent_id)
