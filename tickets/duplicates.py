"""Repeated requests: finding likely duplicates and merging them into a lead ticket (并单).

A merged ticket gets status MERGED and a link to its lead; it follows the lead from then on
(its citizen sees the lead's progress and outcome), and its departments no longer see it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from hotline.db import utcnow
from tickets.dispatch import DispatchError
from tickets.lifecycle import Action
from tickets.models import Ticket, TicketAssignment, TicketEvent, TicketStatus
from tickets.service import apply

DUPLICATE_WINDOW_DAYS = 7
# Still being worked on: a new request should join these rather than start again.
OPEN = {
    TicketStatus.ACCEPTED,
    TicketStatus.DISPATCHED,
    TicketStatus.SIGNED,
    TicketStatus.IN_PROGRESS,
    TicketStatus.RETURNED,
    TicketStatus.REPLIED,
}


@dataclass(frozen=True)
class Duplicate:
    ticket: Ticket
    reasons: tuple[str, ...]
    open: bool


def possible_duplicates(
    session: Session,
    *,
    caller_phone: str = "",
    category_code: str = "",
    district: str = "",
    address: str = "",
    days: int = DUPLICATE_WINDOW_DAYS,
    exclude_id: int | None = None,
    now: dt.datetime | None = None,
    limit: int = 10,
) -> list[Duplicate]:
    """Tickets of the last `days` days from the same caller, or of the same category at the same
    address (or, without an address, in the same district); open ones first, then newest."""
    now = now or utcnow()
    same: list[ColumnElement[bool]] = []
    if caller_phone.strip():
        same.append(Ticket.caller_phone == caller_phone.strip())
    if category_code and address.strip():
        same.append(and_(Ticket.category_code == category_code, Ticket.address == address.strip()))
    elif category_code and district:
        same.append(and_(Ticket.category_code == category_code, Ticket.district == district))
    if not same:
        return []
    query = select(Ticket).where(
        or_(*same),
        Ticket.created_at >= now - dt.timedelta(days=days),
        Ticket.status != TicketStatus.MERGED,  # their lead ticket is found instead
    )
    if exclude_id is not None:
        query = query.where(Ticket.id != exclude_id)
    found = []
    for ticket in session.scalars(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(200)):
        reasons = []
        if caller_phone.strip() and ticket.caller_phone == caller_phone.strip():
            reasons.append("同一来电号码")
        if category_code and ticket.category_code == category_code:
            if address.strip() and ticket.address == address.strip():
                reasons.append("同类诉求、同一地址")
            elif not address.strip() and ticket.district == district:
                reasons.append("同类诉求、同一区县")
        found.append(Duplicate(ticket, tuple(reasons), ticket.status in OPEN))
    found.sort(key=lambda d: not d.open)  # stable: newest first within each group
    return found[:limit]


def merge(
    session: Session,
    duplicate: Ticket,
    lead: Ticket,
    *,
    actor_id: int | None = None,
    note: str = "",
    now: dt.datetime | None = None,
    source: str = "",
) -> TicketEvent:
    """并单: `duplicate` follows `lead` from now on; tickets merged into it follow `lead` too."""
    now = now or utcnow()
    if duplicate.id == lead.id:
        raise DispatchError("不能将工单并入自身")
    if lead.status in (TicketStatus.MERGED, TicketStatus.CLOSED):
        raise DispatchError(
            f"主工单 {lead.number} 已{'并单' if lead.status is TicketStatus.MERGED else '归档'}，不能并入"
        )
    text = f"并入工单 {lead.number}" + (f"：{note}" if note else "")
    event = apply(session, duplicate, Action.MERGE, actor_id=actor_id, note=text, now=now, source=source)
    duplicate.merged_into_id = lead.id
    # No chains: whatever followed the duplicate now follows the lead directly.
    session.execute(
        update(Ticket).where(Ticket.merged_into_id == duplicate.id).values(merged_into_id=lead.id)
    )
    session.execute(
        update(TicketAssignment).where(TicketAssignment.ticket_id == duplicate.id).values(active=False)
    )
    apply(
        session,
        lead,
        Action.NOTE,
        actor_id=actor_id,
        note=f"工单 {duplicate.number} 并入本工单",
        now=now,
        source=source,
    )
    return event


def lead_of(session: Session, ticket: Ticket) -> Ticket:
    """The ticket that speaks for `ticket`: its lead when merged, else itself."""
    if ticket.merged_into_id is None:
        return ticket
    return session.get_one(Ticket, ticket.merged_into_id)


def followers(session: Session, lead: Ticket) -> list[Ticket]:
    """The tickets merged into `lead`, oldest first."""
    return list(session.scalars(select(Ticket).where(Ticket.merged_into_id == lead.id).order_by(Ticket.id)))
