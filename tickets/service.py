"""Creating work orders and moving them through the lifecycle, one event and one audit line per change.

Each change also writes what follows from it (`tickets.followups`: notifications to the outbox,
the revisit task) in the same transaction, whichever page, API or job made it.

Sending a ticket to departments (派单, 改派, 重办) also sets its departments' shares and its sign
and reply deadlines here, so every caller of `apply` gets them, not only `tickets.dispatch`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hotline.accounts import audit
from hotline.db import utcnow
from tickets import catalog, deadlines, followups, work_calendar
from tickets.lifecycle import Action, next_status
from tickets.models import (
    AssignmentRole,
    AssignmentState,
    Channel,
    RequestKind,
    Ticket,
    TicketAssignment,
    TicketEvent,
    TicketStatus,
    Urgency,
)
from tickets.numbering import next_number

# The lead department's share follows the ticket, whichever path moved it (退回重办, 重办, ...).
_LEAD_SHARE = {
    TicketStatus.DISPATCHED: AssignmentState.DISPATCHED,
    TicketStatus.SIGNED: AssignmentState.SIGNED,
    TicketStatus.IN_PROGRESS: AssignmentState.SIGNED,
    TicketStatus.RETURNED: AssignmentState.RETURNED,
    TicketStatus.REPLIED: AssignmentState.REPLIED,
}
TO_DEPARTMENTS = {Action.DISPATCH, Action.REDISPATCH, Action.REOPEN}


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
    address: str = "",
    confidential: bool = False,
    callback_required: bool = False,
    urgency: Urgency = Urgency.NORMAL,
    request_kind: RequestKind = RequestKind.HELP,
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
        address=address,
        confidential=confidential,
        callback_required=callback_required,
        urgency=urgency,
        request_kind=request_kind,
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
    followups.after_create(session, ticket, now)
    return ticket


def apply(
    session: Session,
    ticket: Ticket,
    action: Action,
    *,
    actor_id: int | None = None,
    note: str = "",
    department_id: int | None = None,
    assist_department_ids: Sequence[int] | None = None,
    now: dt.datetime | None = None,
    policy: deadlines.DeadlinePolicy = deadlines.DEFAULT_POLICY,
    source: str = "",
) -> TicketEvent:
    """Apply `action` (refused by `TransitionError` if the lifecycle does not allow it).

    `department_id` is the department sent to (派单/改派; 重办 keeps the lead when None) or acting
    (签收, 办结, 协办 steps). `assist_department_ids` are the assisting departments of a dispatch
    (None keeps the current ones). `source` says where the action came from for the audit trail.
    """
    now = now or utcnow()
    before = ticket.status
    after = next_status(before, action)
    lead = department_id if department_id is not None else ticket.department_id
    if action in TO_DEPARTMENTS and lead is None:
        raise ValueError(f"{action.value} needs the department to send the ticket to")
    ticket.status = after
    ticket.updated_at = now
    shares: list[TicketAssignment] | None = None
    if action in TO_DEPARTMENTS and lead is not None:
        department_id = ticket.department_id = lead
        shares = _send(session, ticket, lead, assist_department_ids, now, policy)
    elif after is not before and after in _LEAD_SHARE:
        _mirror_lead_share(session, ticket, _LEAD_SHARE[after])
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
    audit(
        session,
        f"ticket.{action.value}",
        actor_id=actor_id,
        target_type="ticket",
        target_id=ticket.number,
        detail={"from": before.value, "to": after.value, "department_id": event.department_id},
        source=source,
    )
    followups.after_event(session, ticket, event, shares)
    return event


def _mirror_lead_share(session: Session, ticket: Ticket, state: AssignmentState) -> None:
    session.execute(
        update(TicketAssignment)
        .where(
            TicketAssignment.ticket_id == ticket.id,
            TicketAssignment.role == AssignmentRole.LEAD,
            TicketAssignment.active,
        )
        .values(state=state)
    )


def _send(
    session: Session,
    ticket: Ticket,
    lead_id: int,
    assist_ids: Sequence[int] | None,
    now: dt.datetime,
    policy: deadlines.DeadlinePolicy,
) -> list[TicketAssignment]:
    """Give the departments their shares (others lose theirs) and the ticket fresh deadlines.

    Returns the active shares, lead first, then in the order of their ids (new ones last).
    """
    shares: dict[int, TicketAssignment] = {}
    # Shares are only ever made here, which also stamps `dispatched_at`: a ticket never sent has
    # none to read. No flush while reading: the ticket's changes, its shares and the events
    # pending since it was created are written together by the event's flush (fewer round trips).
    if ticket.dispatched_at is not None:
        with session.no_autoflush:
            found = session.scalars(select(TicketAssignment).where(TicketAssignment.ticket_id == ticket.id))
            shares = {a.department_id: a for a in found}
    if assist_ids is None:
        assist_ids = [d for d, a in shares.items() if a.active and a.role is AssignmentRole.ASSIST]
    wanted = [lead_id, *dict.fromkeys(d for d in assist_ids if d != lead_id)]
    for department_id, share in shares.items():
        share.active = department_id in wanted
    for department_id in wanted:
        if department_id not in shares:
            shares[department_id] = TicketAssignment(ticket_id=ticket.id, department_id=department_id)
            session.add(shares[department_id])
        share = shares[department_id]
        # Sent again, a department starts again; its earlier steps stay in the history.
        share.role = AssignmentRole.LEAD if department_id == lead_id else AssignmentRole.ASSIST
        share.state, share.active, share.assigned_at = AssignmentState.DISPATCHED, True, now
        share.signed_at, share.replied_at, share.reply = None, None, ""
    with session.no_autoflush:
        category_limit = catalog.category_limit(session, ticket.category_code)
    # The city's own holidays and working days count as the national calendar's do.
    policy = policy.with_calendar(work_calendar.overrides(session))
    times = deadlines.compute(policy, now, ticket.request_kind, ticket.urgency, category_limit)
    ticket.dispatched_at, ticket.sign_deadline_at, ticket.deadline_at = now, times.sign, times.reply
    # The order the table gives them (`notify`'s query did): existing ids first, new rows as added.
    order = {department_id: n for n, department_id in enumerate(wanted)}
    return sorted(
        (shares[d] for d in wanted),
        key=lambda a: (a.role is not AssignmentRole.LEAD, a.id is None, a.id or 0, order[a.department_id]),
    )
