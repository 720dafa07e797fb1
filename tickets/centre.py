"""The 12345 centre's side of the lifecycle: its work lists and its decisions on departments' steps.

Work lists: replies to review (审核), returns to review (派单异议审核), extension requests to decide,
overdue and supervised tickets (催办/督办). Decisions go through the same functions as every other
path (`tickets.dispatch`, `tickets.duplicates`, `tickets.revisit`, `tickets.service.apply`), so
each is one event, one audit line and the notifications that follow, and a ticket in the wrong
status is refused by the lifecycle table. Errors a user reads are `DispatchError` (Chinese).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets import catalog, dispatch, duplicates, revisit, sla
from tickets.dispatch import DispatchError
from tickets.lifecycle import WITH_DEPARTMENT, Action
from tickets.models import (
    AssignmentRole,
    Department,
    ExtensionRequest,
    ExtensionState,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from tickets.service import apply

LIMIT = 200


@dataclass(frozen=True)
class Item:
    """One line of a work list: the ticket, the department concerned, and what it said."""

    ticket: Ticket
    department: str
    said: str  # the reply, the return reason, the extension reason, or why it is overdue
    at: dt.datetime | None  # when it was said, or the missed deadline
    extension: ExtensionRequest | None = None
    supervised: bool = False


def department_names(session: Session) -> dict[int, str]:
    return {d.id: d.name for d in session.scalars(select(Department))}


def _latest(session: Session, tickets: Iterable[Ticket], actions: Sequence[str]) -> dict[int, TicketEvent]:
    """Each ticket's latest event among `actions` (one query for the whole list)."""
    ids = [t.id for t in tickets]
    if not ids:
        return {}
    query = (
        select(TicketEvent)
        .where(TicketEvent.ticket_id.in_(ids), TicketEvent.action.in_(actions))
        .order_by(TicketEvent.at, TicketEvent.id)
    )
    return {e.ticket_id: e for e in session.scalars(query)}  # later rows win


def _by_status(session: Session, status: TicketStatus, action: Action) -> list[Item]:
    tickets = list(
        session.scalars(
            select(Ticket).where(Ticket.status == status).order_by(Ticket.updated_at).limit(LIMIT)
        )
    )
    names = department_names(session)
    said = _latest(session, tickets, [action.value])
    items = []
    for ticket in tickets:
        event = said.get(ticket.id)
        department = event.department_id if event is not None else ticket.department_id
        note = event.note if event is not None else ""
        at = event.at if event is not None else None
        items.append(Item(ticket, names.get(department or 0, ""), note, at))
    return items


def replies_to_review(session: Session) -> list[Item]:
    """办结 awaiting the centre's review, the oldest first."""
    return _by_status(session, TicketStatus.REPLIED, Action.REPLY)


def returns_to_review(session: Session) -> list[Item]:
    """退单 awaiting 派单异议审核, the oldest first."""
    return _by_status(session, TicketStatus.RETURNED, Action.RETURN)


def extensions_to_decide(session: Session) -> list[Item]:
    query = (
        select(ExtensionRequest, Ticket)
        .join(Ticket, Ticket.id == ExtensionRequest.ticket_id)
        .where(ExtensionRequest.state == ExtensionState.PENDING)
        .order_by(ExtensionRequest.requested_at)
        .limit(LIMIT)
    )
    names = department_names(session)
    return [
        Item(ticket, names.get(request.department_id, ""), request.reason, request.requested_at, request)
        for request, ticket in session.execute(query)
    ]


def overdue_and_supervised(session: Session, now: dt.datetime) -> list[Item]:
    """Tickets past a deadline, and open ones already supervised (督办), the longest overdue first."""
    names = department_names(session)
    late = sla.overdue(session, now)
    flagged = list(
        session.scalars(
            select(Ticket)
            .join(TicketEvent, TicketEvent.ticket_id == Ticket.id)
            .where(Ticket.status.in_(WITH_DEPARTMENT), TicketEvent.action == Action.SUPERVISE.value)
            .distinct()
            .limit(LIMIT)
        )
    )
    supervised = {t.id for t in flagged}
    items = [
        Item(
            o.ticket,
            names.get(o.ticket.department_id or 0, ""),
            "签收超期" if o.missed is sla.Missed.SIGN else "办结超期",
            o.deadline,
            supervised=o.ticket.id in supervised,
        )
        for o in late[:LIMIT]
    ]
    listed = {i.ticket.id for i in items}
    items += [
        Item(t, names.get(t.department_id or 0, ""), "督办中", t.deadline_at, supervised=True)
        for t in flagged
        if t.id not in listed
    ]
    return items


def pending_extension(session: Session, ticket: Ticket) -> ExtensionRequest | None:
    return session.scalar(
        select(ExtensionRequest).where(
            ExtensionRequest.ticket_id == ticket.id, ExtensionRequest.state == ExtensionState.PENDING
        )
    )


def _assists(session: Session, ticket: Ticket, leaving_out: int) -> list[int]:
    return [
        a.department_id
        for a in dispatch.assignments(session, ticket)
        if a.role is AssignmentRole.ASSIST and a.department_id != leaving_out
    ]


def suggestions_after_return(session: Session, ticket: Ticket) -> list[catalog.Suggestion]:
    """The catalog's proposals for a returned ticket, without the department that returned it."""
    found = catalog.suggest(session, ticket.category_code, ticket.district, ticket.content)
    return [s for s in found if s.lead.id != ticket.department_id]


def review_reply(
    session: Session, ticket: Ticket, approve: bool, note: str, *, actor_id: int, source: str = ""
) -> TicketEvent:
    """审核: approve (the revisit is due next) or 退回重办 to the lead department with a reason."""
    note = note.strip()
    if approve:
        return revisit.approve_reply(session, ticket, actor_id=actor_id, note=note)
    if not note:
        raise DispatchError("退回重办请填写理由")
    return apply(session, ticket, Action.REJECT_REPLY, actor_id=actor_id, note=note, source=source)


def review_return(
    session: Session,
    ticket: Ticket,
    accept: bool,
    note: str,
    *,
    to_department_id: int | None = None,
    actor_id: int,
    source: str = "",
) -> TicketEvent:
    """派单异议审核 of a 退单. Accepted: 改派 to another department. Refused: back to the department
    that returned it, with the reason. Assisting departments keep their shares either way."""
    note = note.strip()
    if ticket.status is not TicketStatus.RETURNED or ticket.department_id is None:
        raise DispatchError("该工单不在退单待审核状态")
    returned_by = ticket.department_id
    if accept:
        if to_department_id is None:
            raise DispatchError("改派请选择承办单位")
        if to_department_id == returned_by:
            raise DispatchError("退单理由成立时应改派其他单位；如需退回原单位请选择“退单理由不成立”")
        text = "派单异议审核：退单理由成立，改派" + (f"。{note}" if note else "")
        lead = to_department_id
    else:
        if not note:
            raise DispatchError("退单理由不成立时请填写说明，原单位将看到该说明")
        text, lead = f"派单异议审核：退单理由不成立，请原单位继续办理。{note}", returned_by
    assists = _assists(session, ticket, leaving_out=lead)
    return dispatch.dispatch(session, ticket, lead, assists, actor_id=actor_id, note=text, source=source)


def merge_group(
    session: Session, lead: Ticket, others: Sequence[Ticket], note: str, *, actor_id: int, source: str = ""
) -> list[TicketEvent]:
    """并单: every ticket of `others` follows `lead` from now on (each locked by the caller)."""
    if not others:
        raise DispatchError("请选择要并入主工单的工单")
    return [
        duplicates.merge(session, other, lead, actor_id=actor_id, note=note.strip(), source=source)
        for other in others
    ]


def remind(
    session: Session, ticket: Ticket, supervise: bool, note: str, *, actor_id: int, source: str = ""
) -> TicketEvent:
    """催办 or 督办 by the centre, with the text the department reads."""
    default = "12345 中心督办：请立即办理并说明进展" if supervise else "12345 中心催办：请抓紧办理"
    action = Action.SUPERVISE if supervise else Action.URGE
    return apply(session, ticket, action, actor_id=actor_id, note=note.strip() or default, source=source)
