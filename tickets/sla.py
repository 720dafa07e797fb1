"""Overdue detection (超期): which tickets missed their sign or reply deadline, for jobs and views.

The arithmetic is `tickets.deadlines` (no I/O); this module only asks the database.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from tickets.models import Ticket, TicketStatus

# Still with a department, so still able to be late.
_WITH_DEPARTMENT = (TicketStatus.DISPATCHED, TicketStatus.SIGNED, TicketStatus.IN_PROGRESS)


class Missed(enum.StrEnum):
    SIGN = "sign"  # 签收超期
    REPLY = "reply"  # 办结超期


@dataclass(frozen=True)
class Overdue:
    ticket: Ticket
    missed: Missed
    deadline: dt.datetime


def overdue(session: Session, now: dt.datetime, department_id: int | None = None) -> list[Overdue]:
    """Tickets past a deadline at `now`, the longest overdue first; a ticket late for both is listed
    once, for its reply (the later and more serious miss)."""
    sign_late = and_(Ticket.status == TicketStatus.DISPATCHED, Ticket.sign_deadline_at < now)
    reply_late = Ticket.deadline_at < now
    query = select(Ticket).where(Ticket.status.in_(_WITH_DEPARTMENT), or_(sign_late, reply_late))
    if department_id is not None:
        query = query.where(Ticket.department_id == department_id)
    found = []
    for ticket in session.scalars(query):
        if ticket.deadline_at is not None and ticket.deadline_at < now:
            found.append(Overdue(ticket, Missed.REPLY, ticket.deadline_at))
        elif ticket.sign_deadline_at is not None:
            found.append(Overdue(ticket, Missed.SIGN, ticket.sign_deadline_at))
    return sorted(found, key=lambda o: (o.deadline, o.ticket.id))
