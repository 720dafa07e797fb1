"""What the public may see of a ticket: a coarse status, the department's reply, a timeline.

Shared by the public portal and Open311. Internal steps (notes, 催办/督办, 退单, extension
requests, assisting departments' steps) and every staff name stay inside; departments are named,
people never. A merged (并单) ticket shows its lead ticket's progress.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets import catalog
from tickets.followups import OUTCOME_ACTIONS
from tickets.lifecycle import Action
from tickets.models import Department, Ticket, TicketEvent, TicketStatus
from tickets.models import TicketStatus as S

STATUS = {
    S.ACCEPTED: "已受理",
    S.DISPATCHED: "办理中",
    S.SIGNED: "办理中",
    S.IN_PROGRESS: "办理中",
    S.RETURNED: "办理中",  # the centre re-dispatches; the citizen need not follow the back-and-forth
    S.REPLIED: "已答复",
    S.REVIEWED: "已答复",
    S.RESOLVED_DIRECTLY: "已答复",
    S.REVISITED: "已回访",
    S.CLOSED: "已办结",
    S.MERGED: "已合并办理",
}
# Open311 has two statuses; "closed" once the outcome stands (review passed or answered directly).
CLOSED = {S.REVIEWED, S.REVISITED, S.CLOSED, S.RESOLVED_DIRECTLY, S.MERGED}
# The department's answer is shown from the reply on (the citizen may rate it and send it back).
REPLY_VISIBLE = {S.REPLIED, S.REVIEWED, S.REVISITED, S.CLOSED, S.RESOLVED_DIRECTLY}

_EVENT_LABELS = {
    "accept": "诉求已受理",
    Action.DISPATCH.value: "已转交承办单位办理",
    Action.REDISPATCH.value: "已转交承办单位办理",
    Action.SIGN.value: "承办单位已签收",
    Action.START.value: "承办单位正在办理",
    Action.REPLY.value: "承办单位已答复",
    Action.RESOLVE_DIRECTLY.value: "热线已直接答复",
    Action.APPROVE_REPLY.value: "答复已通过审核",
    Action.REJECT_REPLY.value: "已退回承办单位重新办理",
    Action.REOPEN.value: "已退回承办单位重新办理",
    Action.REVISIT.value: "已回访",
    Action.CLOSE.value: "已办结归档",
    Action.MERGE.value: "已与同类诉求合并办理",
    Action.APPROVE_EXTENSION.value: "办理时限已延长",
}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NAMES_DEPARTMENT = {Action.DISPATCH.value, Action.REDISPATCH.value, Action.SIGN.value, Action.REPLY.value}


def is_open(status: TicketStatus) -> bool:
    return status not in CLOSED


@dataclass(frozen=True)
class PublicEvent:
    at: dt.datetime
    label: str
    department: str  # "" when the step names none


@dataclass(frozen=True)
class PublicReply:
    text: str
    at: dt.datetime
    department: str  # "" for the hotline's own direct answer


@dataclass(frozen=True)
class PublicView:
    ticket: Ticket  # the one looked up
    followed: Ticket  # its lead ticket when merged, else itself
    status: str
    category: str
    department: str
    reply: PublicReply | None
    events: list[PublicEvent]


def followed(session: Session, ticket: Ticket) -> Ticket:
    """The ticket whose progress this one shows: its lead after a merge (chains followed)."""
    seen = {ticket.id}
    while ticket.merged_into_id is not None and ticket.merged_into_id not in seen:
        lead = session.get(Ticket, ticket.merged_into_id)
        if lead is None:
            break
        seen.add(lead.id)
        ticket = lead
    return ticket


def _names(session: Session) -> dict[int, str]:
    return {d.id: d.name for d in session.scalars(select(Department))}


def reply(session: Session, ticket: Ticket) -> PublicReply | None:
    """The answer the citizen may read, once there is one."""
    if ticket.status not in REPLY_VISIBLE:
        return None
    event = session.scalar(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.action.in_(OUTCOME_ACTIONS))
        .order_by(TicketEvent.at.desc(), TicketEvent.id.desc())
        .limit(1)
    )
    if event is None:
        return None
    department = ""
    if event.action == Action.REPLY and event.department_id is not None:
        found = session.get(Department, event.department_id)
        department = found.name if found is not None else ""
    return PublicReply(event.note, event.at, department)


def timeline(session: Session, ticket: Ticket) -> list[PublicEvent]:
    names = _names(session)
    events = session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.at, TicketEvent.id)
    )
    shown = []
    for event in events:
        label = _EVENT_LABELS.get(event.action)
        if label is None:
            continue
        if event.action == Action.APPROVE_EXTENSION:
            # Only the new date: the rest of the decision's note is internal.
            day = _DATE.search(event.note)
            label = f"{label}至 {day.group(0)}" if day else label
        named = event.action in _NAMES_DEPARTMENT and event.department_id is not None
        shown.append(PublicEvent(event.at, label, names.get(event.department_id or 0, "") if named else ""))
    return shown


def view(session: Session, ticket: Ticket) -> PublicView:
    lead = followed(session, ticket)
    department = ""
    if lead.department_id is not None:
        found = session.get(Department, lead.department_id)
        department = found.name if found is not None else ""
    events = timeline(session, ticket)
    if lead is not ticket:
        events += timeline(session, lead)[1:]  # the lead's own acceptance is not this citizen's
    return PublicView(
        ticket=ticket,
        followed=lead,
        status=STATUS[lead.status],
        category=catalog.category_label(session, ticket.category_code) if ticket.category_code else "",
        department=department,
        reply=reply(session, lead),
        events=sorted(events, key=lambda e: e.at),
    )
