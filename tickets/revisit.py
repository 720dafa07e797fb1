"""回访 and 好差评: approving replies, recording the citizen's satisfaction, closing or reopening.

The same rules serve every channel: the outbound-call IVR (`revisit(..., channel="ivr")`), the
public portal's rating form and an agent calling back. One rating per outcome (the latest reply
or direct answer); an unsatisfied one sends the ticket back the way the lifecycle allows:
退回重办 while the reply awaits review, 重办 to the lead department after review.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hotline.accounts import audit
from hotline.db import utcnow
from tickets import followups, notify
from tickets.lifecycle import Action
from tickets.models import Ticket, TicketEvent, TicketStatus
from tickets.models_outcomes import Rating, RevisitState, RevisitTask, Satisfaction
from tickets.service import apply

LABELS = {
    Satisfaction.VERY_SATISFIED: "非常满意",
    Satisfaction.SATISFIED: "满意",
    Satisfaction.BASICALLY_SATISFIED: "基本满意",
    Satisfaction.DISSATISFIED: "不满意",
    Satisfaction.VERY_DISSATISFIED: "非常不满意",
}
# In the order an IVR reads them: key 1 is 非常满意 ... key 5 非常不满意.
LEVELS = tuple(Satisfaction)
UNSATISFIED = {Satisfaction.DISSATISFIED, Satisfaction.VERY_DISSATISFIED}
CHANNELS = {"portal": "网站", "ivr": "电话回访", "phone": "人工回访", "sms": "短信"}
# Statuses in which an outcome can be rated (a closed one only if it was closed unrated).
RATABLE = {
    TicketStatus.REPLIED,
    TicketStatus.REVIEWED,
    TicketStatus.RESOLVED_DIRECTLY,
    TicketStatus.CLOSED,
}


class RevisitError(Exception):
    """A rating that cannot be taken; the message is Chinese, for the citizen or the agent."""


def level_for_key(key: str) -> Satisfaction:
    """The level of a DTMF key 1-5 (`RevisitError` for anything else)."""
    if key not in ("1", "2", "3", "4", "5"):
        raise RevisitError("请按 1 至 5 键评价")
    return LEVELS[int(key) - 1]


def rating_of(session: Session, ticket: Ticket) -> Rating | None:
    """The rating of the ticket's current outcome, if it has one."""
    outcome = followups.outcome_event(session, ticket)
    if outcome is None:
        return None
    return session.scalar(select(Rating).where(Rating.outcome_event_id == outcome.id))


def can_rate(session: Session, ticket: Ticket) -> bool:
    if ticket.status not in RATABLE:
        return False
    return followups.outcome_event(session, ticket) is not None and rating_of(session, ticket) is None


def approve_reply(
    session: Session,
    ticket: Ticket,
    *,
    actor_id: int | None = None,
    note: str = "",
    now: dt.datetime | None = None,
) -> TicketEvent:
    """审核 passed: the revisit is due the next working day, or done at once if the citizen already
    rated this reply as satisfied on the portal."""
    now = now or utcnow()
    event = apply(session, ticket, Action.APPROVE_REPLY, actor_id=actor_id, note=note, now=now)
    rating = rating_of(session, ticket)
    if rating is not None and rating.level not in UNSATISFIED:
        _finish(session, ticket, rating, actor_id, now)
    return event


def revisit(
    session: Session,
    ticket: Ticket,
    rating: Satisfaction,
    channel: str,
    *,
    comment: str = "",
    actor_id: int | None = None,
    now: dt.datetime | None = None,
) -> Rating:
    """Record the citizen's satisfaction with the current outcome and move the ticket on.

    REVIEWED or RESOLVED_DIRECTLY: 回访, then 归档 if satisfied, else 重办 to the lead department
    (a direct answer has none: the centre is told to take it up). REPLIED (not yet reviewed):
    kept for the review if satisfied, 退回重办 if not. CLOSED without a rating: kept (and the
    centre told if unsatisfied). Anything else: `RevisitError`.
    """
    now = now or utcnow()
    if channel not in CHANNELS:
        raise ValueError(f"unknown revisit channel {channel!r}")
    outcome = followups.outcome_event(session, ticket)
    if ticket.status not in RATABLE or outcome is None:
        raise RevisitError("该工单尚无办理结果，暂不能评价")
    if rating_of(session, ticket) is not None:
        raise RevisitError("该办理结果已评价，感谢您的反馈")
    row = Rating(
        ticket_id=ticket.id,
        outcome_event_id=outcome.id,
        department_id=ticket.department_id,
        level=rating,
        channel=channel,
        comment=comment.strip()[:500],
        rated_at=now,
    )
    try:
        with session.begin_nested():  # a twin submit that committed first owns the outcome
            session.add(row)
    except IntegrityError as error:
        raise RevisitError("该办理结果已评价，感谢您的反馈") from error
    said = f"{CHANNELS[channel]}评价：{LABELS[rating]}" + (f"。{row.comment}" if row.comment else "")
    audit(
        session,
        "ticket.rating",
        actor_id=actor_id,
        target_type="ticket",
        target_id=ticket.number,
        detail={"level": rating.value, "channel": channel},
        source=channel,
    )
    unsatisfied = rating in UNSATISFIED
    if ticket.status is TicketStatus.REPLIED:
        action = Action.REJECT_REPLY if unsatisfied else Action.NOTE
        apply(session, ticket, action, actor_id=actor_id, note=f"市民{said}", now=now)
    elif ticket.status is TicketStatus.CLOSED:
        if unsatisfied:
            text = f"工单 {ticket.number} 已归档，市民{said}，请中心核实处理"
            notify.to_centre(session, ticket, notify.Kind.UNSATISFIED, text, now)
    elif unsatisfied:
        apply(session, ticket, Action.REVISIT, actor_id=actor_id, note=said, now=now)
        _complete_task(session, outcome, row, now)
        if ticket.department_id is not None:
            note = f"市民不满意，重办。{said}"
            apply(session, ticket, Action.REOPEN, actor_id=actor_id, note=note, now=now)
        else:
            text = f"直接办结的工单 {ticket.number} 市民{said}，请中心重新处理或派单"
            notify.to_centre(session, ticket, notify.Kind.UNSATISFIED, text, now)
    else:
        _finish(session, ticket, row, actor_id, now, said)
    return row


def _finish(
    session: Session,
    ticket: Ticket,
    rating: Rating,
    actor_id: int | None,
    now: dt.datetime,
    said: str = "",
) -> None:
    said = said or f"{CHANNELS.get(rating.channel, rating.channel)}评价：{LABELS[rating.level]}"
    apply(session, ticket, Action.REVISIT, actor_id=actor_id, note=said, now=now)
    outcome = session.get_one(TicketEvent, rating.outcome_event_id)
    _complete_task(session, outcome, rating, now)
    apply(session, ticket, Action.CLOSE, actor_id=actor_id, note="回访满意，归档", now=now)


def _complete_task(session: Session, outcome: TicketEvent, rating: Rating, now: dt.datetime) -> None:
    session.flush()
    task = session.scalar(select(RevisitTask).where(RevisitTask.outcome_event_id == outcome.id))
    if task is not None:
        task.state, task.done_at, task.rating_id = RevisitState.DONE, now, rating.id


def due_revisits(session: Session, today: dt.date, limit: int = 100) -> list[tuple[RevisitTask, Ticket]]:
    """Revisits to make today (the outbound-call IVR's work list), the oldest first."""
    query = (
        select(RevisitTask, Ticket)
        .join(Ticket, Ticket.id == RevisitTask.ticket_id)
        .where(
            RevisitTask.state == RevisitState.PENDING,
            RevisitTask.due_on <= today,
            Ticket.status.in_((TicketStatus.REVIEWED, TicketStatus.RESOLVED_DIRECTLY)),
        )
        .order_by(RevisitTask.due_on, RevisitTask.id)
        .limit(limit)
    )
    return [(task, ticket) for task, ticket in session.execute(query)]
