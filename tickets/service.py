"""Creating work orders and moving them through the lifecycle, one event per change."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from hotline.db import utcnow
from tickets.lifecycle import Action, next_status
from tickets.models import Channel, Ticket, TicketEvent, TicketStatus
from tickets.numbering import next_number


def create_ticket(
    session: Session,
    *,
    channel: Channel,
    content: str,
    caller_phone: str = "",
    caller_name: str = "",
    title: str = "",
    call_id: str | None = None,
    actor_id: int | None = None,
    category_code: str = "",
    district: str = "",
    confidential: bool = False,
    now: dt.datetime | None = None,
) -> Ticket:
    """Register a new ticket (受理) with its number and first history event."""
    now = now or utcnow()
    ticket = Ticket(
        number=next_number(session, now),
        status=TicketStatus.ACCEPTED,
        channel=channel,
        content=content,
        caller_phone=caller_phone,
        caller_name=caller_name,
        title=title or content[:40],
        call_id=call_id,
        created_by_id=actor_id,
        category_code=category_code,
        district=district,
        confidential=confidential,
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    session.flush()
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            at=now,
            actor_id=actor_id,
            action="accept",
            from_status=None,
            to_status=TicketStatus.ACCEPTED,
            note=f"channel {channel.value}",
        )
    )
    return ticket


def apply(
    session: Session,
    ticket: Ticket,
    action: Action,
    *,
    actor_id: int | None = None,
    note: str = "",
    department_id: int | None = None,
    now: dt.datetime | None = None,
) -> TicketEvent:
    """Apply `action` (refused by `TransitionError` if the lifecycle does not allow it)."""
    now = now or utcnow()
    before = ticket.status
    after = next_status(before, action)
    if action in (Action.DISPATCH, Action.REDISPATCH):
        if department_id is None:
            raise ValueError(f"{action.value} needs the department to send the ticket to")
        ticket.department_id = department_id
    ticket.status = after
    ticket.updated_at = now
    if after is TicketStatus.CLOSED:
        ticket.closed_at = now
    event = TicketEvent(
        ticket_id=ticket.id,
        at=now,
        actor_id=actor_id,
        action=action.value,
        from_status=before,
        to_status=after,
        department_id=department_id if department_id is not None else ticket.department_id,
        note=note,
    )
    session.add(event)
    return event
