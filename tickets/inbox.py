"""A department's view of its tickets, shared by the department portal and the department API.

Only tickets with an active share (lead or assisting) for the department are found at all, so a
ticket of another department looks exactly like one that does not exist. The reporter is masked
or hidden here, once, for every page and answer.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets import catalog, deadlines, labels, lifecycle, privacy
from tickets.deadlines import DeadlineState
from tickets.dispatch import assignments
from tickets.models import (
    AssignmentRole,
    AssignmentState,
    Attachment,
    Department,
    ExtensionRequest,
    Ticket,
    TicketAssignment,
    TicketEvent,
    TicketStatus,
)


class View(enum.StrEnum):
    TODO = "todo"  # 待办: to sign or to answer
    TO_SIGN = "to_sign"  # 待签收
    DONE = "done"  # answered or returned by this department
    ALL = "all"


VIEW_LABELS = {View.TODO: "待办", View.TO_SIGN: "待签收", View.DONE: "已答复/退回", View.ALL: "全部"}
_STATES = {
    View.TODO: (AssignmentState.DISPATCHED, AssignmentState.SIGNED),
    View.TO_SIGN: (AssignmentState.DISPATCHED,),
    View.DONE: (AssignmentState.REPLIED, AssignmentState.RETURNED),
    View.ALL: tuple(AssignmentState),
}


@dataclass(frozen=True)
class Row:
    ticket: Ticket
    share: TicketAssignment
    sign_state: DeadlineState
    reply_state: DeadlineState


def _states(ticket: Ticket, share: TicketAssignment, now: dt.datetime) -> tuple[DeadlineState, DeadlineState]:
    # Only what the department still owes can be late: signing before it signed, the reply before it replied.
    sign = (
        deadlines.state(ticket.sign_deadline_at, now) if share.state is AssignmentState.DISPATCHED else None
    )
    open_ = share.state in (AssignmentState.DISPATCHED, AssignmentState.SIGNED)
    reply = deadlines.state(ticket.deadline_at, now) if open_ else None
    return sign or DeadlineState.NONE, reply or DeadlineState.NONE


def listing(
    session: Session, department_id: int, view: View, now: dt.datetime, limit: int = 200
) -> list[Row]:
    """The department's tickets in one view, the most urgent deadline first."""
    query = (
        select(Ticket, TicketAssignment)
        .join(TicketAssignment, TicketAssignment.ticket_id == Ticket.id)
        .where(
            TicketAssignment.department_id == department_id,
            TicketAssignment.active,
            TicketAssignment.state.in_(_STATES[view]),
        )
        .order_by(Ticket.deadline_at.asc(), Ticket.id.asc())
        .limit(limit)
    )
    return [Row(ticket, share, *_states(ticket, share, now)) for ticket, share in session.execute(query)]


def find(
    session: Session, department_id: int, number: str, *, for_update: bool = False
) -> tuple[Ticket, TicketAssignment] | None:
    """The ticket with this number if the department has an active share in it, else None."""
    query = (
        select(Ticket, TicketAssignment)
        .join(TicketAssignment, TicketAssignment.ticket_id == Ticket.id)
        .where(
            Ticket.number == number, TicketAssignment.department_id == department_id, TicketAssignment.active
        )
    )
    if for_update:
        # Two people of one department acting at once: the second waits and sees the first's result.
        query = query.with_for_update(of=Ticket)
    found = session.execute(query).first()
    return (found[0], found[1]) if found is not None else None


def reporter(ticket: Ticket) -> privacy.Reporter:
    return privacy.reporter_for_department(
        ticket.caller_name, ticket.caller_phone, ticket.confidential, ticket.callback_required
    )


def local(moment: dt.datetime | None, tz: ZoneInfo = deadlines.LOCAL) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat() if moment is not None else None


@dataclass(frozen=True)
class Detail:
    ticket: Ticket
    share: TicketAssignment
    category: str
    shares: list[tuple[TicketAssignment, str]]  # every active share with its department's name
    events: list[tuple[TicketEvent, str]]  # the history with the acting department's name
    attachments: list[Attachment]
    extension: ExtensionRequest | None  # the latest extension request, if any
    sign_state: DeadlineState
    reply_state: DeadlineState


def detail(session: Session, ticket: Ticket, share: TicketAssignment, now: dt.datetime) -> Detail:
    names = {d.id: d.name for d in session.scalars(select(Department))}
    events = session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.at, TicketEvent.id)
    )
    sign_state, reply_state = _states(ticket, share, now)
    files = session.scalars(
        select(Attachment).where(Attachment.ticket_id == ticket.id).order_by(Attachment.id)
    ).all()
    return Detail(
        ticket=ticket,
        share=share,
        category=catalog.category_label(session, ticket.category_code) if ticket.category_code else "",
        shares=[(a, names.get(a.department_id, "")) for a in assignments(session, ticket)],
        events=[(e, names.get(e.department_id, "") if e.department_id else "") for e in events],
        attachments=list(files),
        extension=session.scalar(
            select(ExtensionRequest)
            .where(ExtensionRequest.ticket_id == ticket.id)
            .order_by(ExtensionRequest.id.desc())
            .limit(1)
        ),
        sign_state=sign_state,
        reply_state=reply_state,
    )


def as_json(ticket: Ticket, share: TicketAssignment, now: dt.datetime) -> dict[str, Any]:
    """One ticket as the department API shows it (times in ISO 8601 UTC, reporter masked)."""
    person = reporter(ticket)
    sign_state, reply_state = _states(ticket, share, now)
    return {
        "number": ticket.number,
        "status": ticket.status.value,
        "status_label": labels.STATUS[ticket.status],
        "role": share.role.value,
        "share_state": share.state.value,
        "title": ticket.title,
        "content": ticket.content,
        "category_code": ticket.category_code,
        "request_kind": ticket.request_kind.value,
        "urgency": ticket.urgency.value,
        "district": ticket.district,
        "address": ticket.address,
        "confidential": ticket.confidential,
        "callback_required": ticket.callback_required and not ticket.confidential,
        "reporter": {"name": person.name, "phone": person.phone, "masked": person.masked},
        "created_at": _iso(ticket.created_at),
        "dispatched_at": _iso(ticket.dispatched_at),
        "sign_deadline": _iso(ticket.sign_deadline_at),
        "reply_deadline": _iso(ticket.deadline_at),
        "sign_overdue": sign_state is DeadlineState.OVERDUE,
        "reply_overdue": reply_state is DeadlineState.OVERDUE,
        "reply": share.reply,
    }


def history_json(detail: Detail) -> list[dict[str, Any]]:
    return [
        {
            "at": _iso(event.at),
            "action": event.action,
            "action_label": labels.action(event.action),
            "from": event.from_status.value if event.from_status else None,
            "to": event.to_status.value,
            "department": department,
            "note": event.note,
        }
        for event, department in detail.events
    ]


class Step(enum.StrEnum):
    SIGN = "sign"
    REPLY = "reply"
    RETURN = "return"
    EXTENSION = "extension"


def steps(ticket: Ticket, share: TicketAssignment) -> set[Step]:
    """What the department can do now (the pages offer these; the service decides for real)."""
    if share.role is AssignmentRole.LEAD:
        status = ticket.status
        found = {Step.SIGN} if status is TicketStatus.DISPATCHED else set()
        if status in (TicketStatus.SIGNED, TicketStatus.IN_PROGRESS):
            found.add(Step.REPLY)
        if status in (TicketStatus.DISPATCHED, TicketStatus.SIGNED):
            found.add(Step.RETURN)
        if status in lifecycle.WITH_DEPARTMENT:
            found.add(Step.EXTENSION)
        return found
    return {
        AssignmentState.DISPATCHED: {Step.SIGN, Step.RETURN},
        AssignmentState.SIGNED: {Step.REPLY, Step.RETURN},
    }.get(share.state, set())
