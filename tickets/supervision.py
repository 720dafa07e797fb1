"""催办 and 督办 by the clock: remind a department before a deadline, supervise once it is missed.

`sweep` runs every few minutes (the RQ job `tickets.jobs.sla_sweep`). Each reminder or
supervision is one (ticket, kind, deadline) row in `sla_marks`, inserted in the transaction that
appends the event and its notifications; the unique key makes a second run or a second worker
skip it, so each happens exactly once per deadline (an extension's new deadline gets its own).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import and_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction, utcnow
from tickets import deadlines, sla
from tickets.lifecycle import WITH_DEPARTMENT, Action
from tickets.models import Ticket, TicketStatus
from tickets.models_outcomes import SlaMark
from tickets.service import apply

log = logging.getLogger(__name__)

URGE_SIGN, URGE_REPLY = "urge_sign", "urge_reply"
SUPERVISE_SIGN, SUPERVISE_REPLY = "supervise_sign", "supervise_reply"


def warn_window(start: dt.datetime | None, deadline: dt.datetime) -> dt.timedelta:
    """How long before a deadline to remind: the 临期 day, or a quarter of a shorter limit
    (a 30-minute emergency is reminded 7.5 minutes before, not at once)."""
    if start is None or start >= deadline:
        return deadlines.DUE_SOON
    return min(deadlines.DUE_SOON, (deadline - start) / 4)


@dataclass(frozen=True)
class Due:
    ticket_id: int
    number: str
    kind: str
    deadline: dt.datetime


@dataclass
class SweepResult:
    urged: list[str] = field(default_factory=list)  # ticket numbers
    supervised: list[str] = field(default_factory=list)


def _note(kind: str, deadline: dt.datetime) -> str:
    at = deadline.astimezone(deadlines.LOCAL).strftime("%Y-%m-%d %H:%M")
    return {
        URGE_SIGN: f"签收时限 {at} 将至，请尽快签收",
        URGE_REPLY: f"办结时限 {at} 将至，请抓紧办理",
        SUPERVISE_SIGN: f"已超过签收时限（{at}），请立即签收办理",
        SUPERVISE_REPLY: f"已超过办结时限（{at}），请立即办结并说明超期原因",
    }[kind]


def due(session: Session, now: dt.datetime) -> list[Due]:
    """Reminders and supervisions owed at `now` that have not been done yet."""
    found = [
        Due(
            o.ticket.id,
            o.ticket.number,
            SUPERVISE_REPLY if o.missed is sla.Missed.REPLY else SUPERVISE_SIGN,
            o.deadline,
        )
        for o in sla.overdue(session, now)
    ]
    soon = now + deadlines.DUE_SOON
    sign_soon = and_(
        Ticket.status == TicketStatus.DISPATCHED,
        Ticket.sign_deadline_at > now,
        Ticket.sign_deadline_at <= soon,
    )
    reply_soon = and_(Ticket.deadline_at > now, Ticket.deadline_at <= soon)
    query = select(Ticket).where(Ticket.status.in_(WITH_DEPARTMENT), sign_soon | reply_soon)
    for ticket in session.scalars(query):
        for kind, deadline in ((URGE_SIGN, ticket.sign_deadline_at), (URGE_REPLY, ticket.deadline_at)):
            if deadline is None or not now < deadline <= soon:
                continue
            if kind == URGE_SIGN and ticket.status is not TicketStatus.DISPATCHED:
                continue
            if now >= deadline - warn_window(ticket.dispatched_at, deadline):
                found.append(Due(ticket.id, ticket.number, kind, deadline))
    if not found:
        return []
    done = {
        (m.ticket_id, m.kind, m.deadline_at)
        for m in session.scalars(select(SlaMark).where(SlaMark.ticket_id.in_({d.ticket_id for d in found})))
    }
    return [d for d in found if (d.ticket_id, d.kind, d.deadline) not in done]


def _mark(session: Session, item: Due, now: dt.datetime) -> bool:
    """Claim the mark; False when another run has it (the insert does nothing)."""
    values = dict(ticket_id=item.ticket_id, kind=item.kind, deadline_at=item.deadline, created_at=now)
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(SlaMark).values(**values).on_conflict_do_nothing().returning(SlaMark.id)
    return session.execute(statement).scalar_one_or_none() is not None


def _still_owed(ticket: Ticket, item: Due) -> bool:
    """The ticket still owes what the item is about (it may have moved since the query)."""
    if ticket.status not in WITH_DEPARTMENT:
        return False
    if item.kind in (URGE_SIGN, SUPERVISE_SIGN):
        return ticket.status is TicketStatus.DISPATCHED and ticket.sign_deadline_at == item.deadline
    return ticket.deadline_at == item.deadline


class _Skip(Exception):
    """Nothing to do for this item after all (done by another run, or the ticket moved on)."""


def sweep(factory: sessionmaker[Session], now: dt.datetime | None = None) -> SweepResult:
    """Do every reminder and supervision owed at `now`, each in its own transaction."""
    now = now or utcnow()
    result = SweepResult()
    with factory() as session:
        items = due(session, now)
    for item in items:
        try:
            # The mark first: a write takes SQLite's lock before reading, so the read below is current.
            with transaction(factory) as session:
                if not _mark(session, item, now):
                    raise _Skip
                ticket = session.get(Ticket, item.ticket_id, with_for_update=True)
                if ticket is None or not _still_owed(ticket, item):
                    raise _Skip  # rolls the mark back too
                urge = item.kind in (URGE_SIGN, URGE_REPLY)
                action = Action.URGE if urge else Action.SUPERVISE
                apply(session, ticket, action, note=_note(item.kind, item.deadline), now=now, source="sla")
        except _Skip:
            continue
        (result.urged if urge else result.supervised).append(item.number)
    if result.urged or result.supervised:
        log.info("sla sweep: urged %s, supervised %s", result.urged, result.supervised)
    return result
