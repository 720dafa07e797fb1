"""Dispatch (派单) to a lead and assisting departments, and each department's steps on its share.

Every step goes through `tickets.service.apply` (one history event and one audit line). The
lead department's steps move the ticket; an assisting department's steps are side actions on
its own `TicketAssignment`. Errors a user must read are `DispatchError` with a Chinese message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from hotline.db import utcnow
from tickets import deadlines, lifecycle, work_calendar
from tickets.lifecycle import Action
from tickets.models import (
    AssignmentRole,
    AssignmentState,
    Department,
    ExtensionRequest,
    ExtensionState,
    Ticket,
    TicketAssignment,
    TicketEvent,
    TicketStatus,
)
from tickets.service import apply

DEFAULT_POLICY = deadlines.DEFAULT_POLICY


class DispatchError(Exception):
    """A step refused for a reason the user must read (the message is Chinese)."""


def assignments(session: Session, ticket: Ticket, active_only: bool = True) -> list[TicketAssignment]:
    query = select(TicketAssignment).where(TicketAssignment.ticket_id == ticket.id)
    if active_only:
        query = query.where(TicketAssignment.active)
    return list(session.scalars(query.order_by(TicketAssignment.role.desc(), TicketAssignment.id)))


def dispatch(
    session: Session,
    ticket: Ticket,
    lead_department_id: int,
    assist_department_ids: Sequence[int] = (),
    *,
    actor_id: int | None = None,
    note: str = "",
    now: dt.datetime | None = None,
    policy: deadlines.DeadlinePolicy = DEFAULT_POLICY,
    source: str = "",
) -> TicketEvent:
    """派单 (改派 after a return, 重办 after a revisit) to active departments, named in the history."""
    assists = [d for d in dict.fromkeys(assist_department_ids) if d != lead_department_id]
    wanted = [lead_department_id, *assists]
    with session.no_autoflush:  # pending rows are written with the dispatch's own (see service._send)
        found = {d.id: d for d in session.scalars(select(Department).where(Department.id.in_(wanted)))}
    missing = [d for d in wanted if d not in found or not found[d].active]
    if missing:
        raise DispatchError(f"承办单位不存在或已停用：{missing}")
    action = {TicketStatus.RETURNED: Action.REDISPATCH, TicketStatus.REVISITED: Action.REOPEN}.get(
        ticket.status, Action.DISPATCH
    )
    names = "、".join(found[d].name for d in assists)
    text = f"主办：{found[lead_department_id].name}" + (f"；协办：{names}" if names else "")
    return apply(
        session,
        ticket,
        action,
        actor_id=actor_id,
        department_id=lead_department_id,
        assist_department_ids=assists,
        note=f"{text}。{note}" if note else text,
        now=now,
        policy=policy,
        source=source,
    )


def _share(session: Session, ticket: Ticket, department_id: int) -> TicketAssignment:
    share = session.scalar(
        select(TicketAssignment).where(
            TicketAssignment.ticket_id == ticket.id,
            TicketAssignment.department_id == department_id,
            TicketAssignment.active,
        )
    )
    if share is None:
        raise DispatchError("该工单未派给本单位")
    return share


def sign(
    session: Session,
    ticket: Ticket,
    department_id: int,
    *,
    actor_id: int | None = None,
    now: dt.datetime | None = None,
    source: str = "",
) -> TicketEvent:
    """签收: the department takes its share of the ticket."""
    now = now or utcnow()
    share = _share(session, ticket, department_id)
    lead = share.role is AssignmentRole.LEAD
    if not lead and share.state is not AssignmentState.DISPATCHED:
        raise DispatchError("本单位已签收该协办工单")
    action = Action.SIGN if lead else Action.ASSIST_SIGN
    event = apply(
        session, ticket, action, actor_id=actor_id, department_id=department_id, now=now, source=source
    )
    share.state, share.signed_at = AssignmentState.SIGNED, now
    return event


def reply(
    session: Session,
    ticket: Ticket,
    department_id: int,
    text: str,
    *,
    actor_id: int | None = None,
    now: dt.datetime | None = None,
    source: str = "",
) -> TicketEvent:
    """办结 for the lead (after every assisting department answered), 协办答复 for an assisting one."""
    now = now or utcnow()
    text = text.strip()
    if not text:
        raise DispatchError("请填写办理结果")
    share = _share(session, ticket, department_id)
    if share.role is AssignmentRole.LEAD:
        others = [
            (_department_name(session, a.department_id), a.state)
            for a in assignments(session, ticket)
            if a.role is AssignmentRole.ASSIST
        ]
        waiting = lifecycle.assists_blocking_reply(others)
        # Only a reply the lifecycle allows can be waiting for assists; others get the lifecycle's error.
        if waiting and ticket.status in (TicketStatus.SIGNED, TicketStatus.IN_PROGRESS):
            raise DispatchError(f"协办单位尚未答复：{'、'.join(waiting)}，主办单位暂不能办结")
    else:
        if share.state is AssignmentState.DISPATCHED:
            raise DispatchError("请先签收再答复")
        if share.state is not AssignmentState.SIGNED:
            raise DispatchError("本单位已答复或退回该协办工单")
    action = Action.REPLY if share.role is AssignmentRole.LEAD else Action.ASSIST_REPLY
    event = apply(
        session,
        ticket,
        action,
        actor_id=actor_id,
        department_id=department_id,
        note=text,
        now=now,
        source=source,
    )
    share.state, share.replied_at, share.reply = AssignmentState.REPLIED, now, text
    return event


def return_(
    session: Session,
    ticket: Ticket,
    department_id: int,
    reason: str,
    *,
    actor_id: int | None = None,
    now: dt.datetime | None = None,
    source: str = "",
) -> TicketEvent:
    """退单: not this department's matter; the centre reviews and re-dispatches (派单异议审核)."""
    now = now or utcnow()
    reason = reason.strip()
    if not reason:
        raise DispatchError("请填写退单理由")
    share = _share(session, ticket, department_id)
    lead = share.role is AssignmentRole.LEAD
    if not lead and share.state not in (AssignmentState.DISPATCHED, AssignmentState.SIGNED):
        raise DispatchError("本单位已答复或退回该协办工单")
    action = Action.RETURN if lead else Action.ASSIST_RETURN
    event = apply(
        session,
        ticket,
        action,
        actor_id=actor_id,
        department_id=department_id,
        note=reason,
        now=now,
        source=source,
    )
    share.state = AssignmentState.RETURNED
    return event


def request_extension(
    session: Session,
    ticket: Ticket,
    department_id: int,
    reason: str,
    proposed: dt.date,
    *,
    actor_id: int | None = None,
    now: dt.datetime | None = None,
    policy: deadlines.DeadlinePolicy = DEFAULT_POLICY,
    source: str = "",
) -> ExtensionRequest:
    """延期申请 by the lead department, before the deadline; the centre decides."""
    now = now or utcnow()
    reason = reason.strip()
    if not reason:
        raise DispatchError("请填写延期理由")
    share = _share(session, ticket, department_id)
    if share.role is not AssignmentRole.LEAD:
        raise DispatchError("延期申请由主办单位提出")
    pending = session.scalar(
        select(ExtensionRequest).where(
            ExtensionRequest.ticket_id == ticket.id, ExtensionRequest.state == ExtensionState.PENDING
        )
    )
    if pending is not None:
        raise DispatchError("已有待审核的延期申请")
    calendar = work_calendar.overrides(session)
    problem = deadlines.extension_problem(policy.with_calendar(calendar), ticket.deadline_at, proposed, now)
    if problem:
        raise DispatchError(problem)
    apply(
        session,
        ticket,
        Action.REQUEST_EXTENSION,
        actor_id=actor_id,
        department_id=department_id,
        note=f"申请延期至 {proposed.isoformat()}：{reason}",
        now=now,
        source=source,
    )
    request = ExtensionRequest(
        ticket_id=ticket.id,
        department_id=department_id,
        reason=reason,
        proposed_date=proposed,
        requested_by_id=actor_id,
        requested_at=now,
        old_deadline_at=ticket.deadline_at,
    )
    session.add(request)
    session.flush()
    return request


def decide_extension(
    session: Session,
    request: ExtensionRequest,
    approve: bool,
    *,
    actor_id: int | None = None,
    note: str = "",
    now: dt.datetime | None = None,
    source: str = "",
) -> TicketEvent:
    """The centre approves (the reply deadline moves to the close of the date) or refuses."""
    now = now or utcnow()
    if request.state is not ExtensionState.PENDING:
        raise DispatchError("该延期申请已处理")
    ticket = session.get_one(Ticket, request.ticket_id)
    if approve:
        new_deadline = deadlines.end_of_day(request.proposed_date)
        event = apply(
            session,
            ticket,
            Action.APPROVE_EXTENSION,
            actor_id=actor_id,
            note=f"同意延期至 {request.proposed_date.isoformat()}。{note}".rstrip("。"),
            now=now,
            source=source,
        )
        ticket.deadline_at = request.new_deadline_at = new_deadline
        request.state = ExtensionState.APPROVED
    else:
        event = apply(
            session,
            ticket,
            Action.REFUSE_EXTENSION,
            actor_id=actor_id,
            note=f"不同意延期。{note}".rstrip("。"),
            now=now,
            source=source,
        )
        request.state = ExtensionState.REFUSED
    request.decided_by_id, request.decided_at = actor_id, now
    return event


def _department_name(session: Session, department_id: int) -> str:
    department = session.get(Department, department_id)
    return department.name if department is not None else str(department_id)
