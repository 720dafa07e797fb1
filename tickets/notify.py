"""The notifications outbox: which outcome tells whom, written as rows in the transaction of the change.

`tickets.service` calls `for_accepted` and `for_event` for every new ticket and every event, so
no path can change a ticket without its notifications, and a rolled-back change leaves none.
Delivery (webhook or SMTP, with retries) is `tickets.delivery`, run by an RQ job. A department's
message never names the reporter: it says what to do with which ticket, nothing more.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets import deadlines, labels
from tickets.lifecycle import Action
from tickets.models import (
    AssignmentRole,
    Channel,
    Department,
    ExtensionRequest,
    Ticket,
    TicketAssignment,
    TicketEvent,
)
from tickets.models_outcomes import Audience, Medium, Notification, Open311Request

SIGNATURE = "【12345】"
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class Kind:
    """Notification kinds, as the `type` a receiving system dispatches on."""

    ACCEPTED = "ticket.accepted"
    DISPATCHED = "ticket.dispatched"
    REPLIED = "ticket.replied"
    CLOSED = "ticket.closed"
    EXTENSION_APPROVED = "ticket.extension_approved"
    REWORK = "ticket.rework"  # 退回重办
    URGED = "ticket.urged"  # 催办
    SUPERVISED = "ticket.supervised"  # 督办
    UNSATISFIED = "ticket.unsatisfied"  # the citizen is not satisfied and no department can take it back


def mobile(phone: str) -> str:
    """The mainland mobile number in `phone` (spaces, dashes and +86 dropped), or ""."""
    digits = re.sub(r"[\s\-]", "", phone)
    digits = digits.removeprefix("+86").removeprefix("0086")
    return digits if _MOBILE.match(digits) else ""


def _local(moment: dt.datetime | None) -> str:
    return moment.astimezone(deadlines.LOCAL).strftime("%Y-%m-%d %H:%M") if moment else "—"


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(deadlines.LOCAL).isoformat() if moment else None


def _ticket_facts(ticket: Ticket, for_department: bool) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "number": ticket.number,
        "status": ticket.status.value,
        "status_label": labels.STATUS[ticket.status],
        "reply_deadline": _iso(ticket.deadline_at),
    }
    if for_department:
        # What the department needs to act; the reporter is never part of it.
        facts |= {
            "title": ticket.title,
            "category_code": ticket.category_code,
            "district": ticket.district,
            "urgency": ticket.urgency.value,
            "sign_deadline": _iso(ticket.sign_deadline_at),
        }
    return facts


def _add(
    session: Session,
    *,
    kind: str,
    audience: Audience,
    medium: Medium,
    recipient: str,
    ticket: Ticket,
    text: str,
    at: dt.datetime,
    subject: str = "",
    department: Department | None = None,
) -> Notification:
    key = uuid.uuid4().hex
    who: dict[str, Any] = {"audience": audience.value}
    if department is not None:
        who |= {"department_code": department.code, "department_name": department.name}
    elif audience is Audience.CITIZEN:
        who |= {"phone": recipient} if medium is Medium.WEBHOOK else {"email": recipient}
    row = Notification(
        kind=kind,
        audience=audience,
        medium=medium,
        recipient=recipient,
        ticket_id=ticket.id,
        department_id=department.id if department is not None else None,
        subject=subject or text.removeprefix(SIGNATURE)[:60],
        body=text,
        payload={
            "id": key,
            "type": kind,
            "created_at": at.astimezone(dt.UTC).isoformat(),
            "recipient": who,
            "text": text,
            "ticket": _ticket_facts(ticket, for_department=audience is not Audience.CITIZEN),
        },
        idempotency_key=key,
        created_at=at,
        next_attempt_at=at,
    )
    session.add(row)
    return row


def to_citizen(
    session: Session, ticket: Ticket, kind: str, text: str, at: dt.datetime, only: Medium | None = None
) -> list[Notification]:
    """An SMS (through the webhook gateway) to a mobile number, an e-mail to an Open311 address."""
    rows = []
    phone = mobile(ticket.caller_phone)
    if phone and only in (None, Medium.WEBHOOK):
        rows.append(
            _add(
                session,
                kind=kind,
                audience=Audience.CITIZEN,
                medium=Medium.WEBHOOK,
                recipient=phone,
                ticket=ticket,
                text=text,
                at=at,
            )
        )
    # Only Open311 requests carry an e-mail address: other tickets skip the look-up (a round trip).
    wants_email = only in (None, Medium.EMAIL) and ticket.channel is Channel.OPEN311
    extra = session.get(Open311Request, ticket.id) if wants_email else None
    if extra is not None and extra.email:
        rows.append(
            _add(
                session,
                kind=kind,
                audience=Audience.CITIZEN,
                medium=Medium.EMAIL,
                recipient=extra.email,
                ticket=ticket,
                text=text,
                at=at,
            )
        )
    return rows


def to_department(
    session: Session, ticket: Ticket, department_id: int, kind: str, text: str, at: dt.datetime
) -> list[Notification]:
    """The department's system by webhook, and its mailbox when it has one."""
    department = session.get(Department, department_id)
    if department is None:
        return []
    routes = [(Medium.WEBHOOK, department.code)]
    if department.notify_email:
        routes.append((Medium.EMAIL, department.notify_email))
    return [
        _add(
            session,
            kind=kind,
            audience=Audience.DEPARTMENT,
            medium=medium,
            recipient=recipient,
            ticket=ticket,
            text=text,
            at=at,
            department=department,
        )
        for medium, recipient in routes
    ]


def to_centre(session: Session, ticket: Ticket, kind: str, text: str, at: dt.datetime) -> list[Notification]:
    """The centre's supervisors by e-mail; the address is read from the settings when sending."""
    return [
        _add(
            session,
            kind=kind,
            audience=Audience.CENTRE,
            medium=Medium.EMAIL,
            recipient="",
            ticket=ticket,
            text=text,
            at=at,
        )
    ]


def accepted_text(ticket: Ticket) -> str:
    return f"{SIGNATURE}您的诉求已受理，工单号 {ticket.number}。可凭工单号和手机号在 12345 网站查询办理进度。"


def for_accepted(session: Session, ticket: Ticket, at: dt.datetime) -> list[Notification]:
    return to_citizen(session, ticket, Kind.ACCEPTED, accepted_text(ticket), at)


def _active_shares(session: Session, ticket: Ticket) -> list[TicketAssignment]:
    query = select(TicketAssignment).where(TicketAssignment.ticket_id == ticket.id, TicketAssignment.active)
    return list(session.scalars(query.order_by(TicketAssignment.role.desc(), TicketAssignment.id)))


def for_event(
    session: Session, ticket: Ticket, event: TicketEvent, shares: Sequence[TicketAssignment] | None = None
) -> list[Notification]:
    """The notifications an event calls for (none for most side steps).

    `shares`: the ticket's active shares in table order, when the caller has them (a dispatch).
    """
    action, at, number = event.action, event.at, ticket.number
    rows: list[Notification] = []
    if action in (Action.DISPATCH, Action.REDISPATCH, Action.REOPEN):
        again = "（重办）" if action == Action.REOPEN else ""
        for share in shares if shares is not None else _active_shares(session, ticket):
            role = labels.ROLE[share.role]
            text = (
                f"{SIGNATURE}工单 {number}{again}已派发贵单位{role}：{ticket.title}。"
                f"请于 {_local(ticket.sign_deadline_at)} 前签收，{_local(ticket.deadline_at)} 前办结。"
            )
            if share.role is AssignmentRole.ASSIST:
                text = (
                    f"{SIGNATURE}工单 {number}{again}请贵单位{role}：{ticket.title}。"
                    f"请于 {_local(ticket.deadline_at)} 前答复主办单位。"
                )
            rows += to_department(session, ticket, share.department_id, Kind.DISPATCHED, text, at)
    elif action in (Action.REPLY, Action.RESOLVE_DIRECTLY):
        text = f"{SIGNATURE}您的工单 {number} 已有办理结果，请凭工单号和手机号在 12345 网站查看并评价。"
        rows += to_citizen(session, ticket, Kind.REPLIED, text, at)
    elif action == Action.CLOSE:
        text = f"{SIGNATURE}您的工单 {number} 已办结归档，感谢您对 12345 热线的支持。"
        rows += to_citizen(session, ticket, Kind.CLOSED, text, at)
    elif action == Action.APPROVE_EXTENSION:
        # The event comes before the request is marked approved: the latest request is this one.
        request = session.scalar(
            select(ExtensionRequest)
            .where(ExtensionRequest.ticket_id == ticket.id)
            .order_by(ExtensionRequest.id.desc())
            .limit(1)
        )
        if request is not None:
            day = request.proposed_date.isoformat()
            text = f"{SIGNATURE}您的工单 {number} 办理时限已延长至 {day}，承办单位将在此之前答复您。"
            rows += to_citizen(session, ticket, Kind.EXTENSION_APPROVED, text, at)
    elif action == Action.REJECT_REPLY and ticket.department_id is not None:
        text = (
            f"{SIGNATURE}工单 {number} 的办理结果被退回重办：{event.note}。"
            f"请于 {_local(ticket.deadline_at)} 前重新办结。"
        )
        rows += to_department(session, ticket, ticket.department_id, Kind.REWORK, text, at)
    elif action == Action.URGE and ticket.department_id is not None:
        text = f"{SIGNATURE}催办：工单 {number}（{ticket.title}）{event.note}"
        rows += to_department(session, ticket, ticket.department_id, Kind.URGED, text, at)
    elif action == Action.SUPERVISE and ticket.department_id is not None:
        text = f"{SIGNATURE}督办：工单 {number}（{ticket.title}）{event.note}"
        rows += to_department(session, ticket, ticket.department_id, Kind.SUPERVISED, text, at)
        department = session.get(Department, ticket.department_id)
        name = department.name if department is not None else ""
        rows += to_centre(session, ticket, Kind.SUPERVISED, f"督办：{name} 工单 {number}：{event.note}", at)
    return rows
