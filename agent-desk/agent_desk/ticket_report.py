"""Ticket figures per hour, day, department, category, district, source or agent, aggregated in SQL.

Per group of tickets created in the period: how many, from which source (电话, 留言, 网站, …),
how many the agent answered directly (直接办结), on-time completion (按时办结率: the lead
department replied by the deadline / replies due, i.e. replied or past the deadline) and
satisfaction (满意率: 非常满意 and 满意 / ratings).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from agent_desk.sqltime import local_bucket
from hotline.accounts import User
from tickets import catalog, labels
from tickets.models import AssignmentRole, Channel, Department, Ticket, TicketAssignment, TicketEvent
from tickets.models_outcomes import Rating, Satisfaction

SATISFIED = (Satisfaction.VERY_SATISFIED, Satisfaction.SATISFIED)
GROUPINGS = {
    "day": "按日",
    "hour": "按小时",
    "department": "按承办单位",
    "category": "按诉求分类",
    "district": "按区县",
    "channel": "按来源",
    "agent": "按话务员",
}


@dataclass(frozen=True)
class TicketRow:
    key: str
    label: str
    created: int
    by_channel: dict[str, int]
    resolved_directly: int
    replies_due: int
    replied_on_time: int
    rated: int
    satisfied: int

    @property
    def on_time_rate(self) -> float | None:
        return self.replied_on_time / self.replies_due if self.replies_due else None

    @property
    def satisfaction_rate(self) -> float | None:
        return self.satisfied / self.rated if self.rated else None

    @property
    def direct_rate(self) -> float | None:
        return self.resolved_directly / self.created if self.created else None


def _key(by: str) -> Any:
    if by in ("hour", "day"):
        return local_bucket(Ticket.created_at, by)
    columns: dict[str, Any] = {
        "department": Ticket.department_id,
        "category": Ticket.category_code,
        "district": Ticket.district,
        "channel": Ticket.channel,
        "agent": Ticket.created_by_id,
    }
    if by not in columns:
        raise ValueError(f"unknown grouping {by!r}")
    return columns[by]


def ticket_report(
    session: Session, since: dt.datetime, until: dt.datetime, now: dt.datetime, by: str
) -> tuple[list[TicketRow], TicketRow]:
    """Rows grouped `by` one of `GROUPINGS`, and the total row."""
    lead = (
        select(TicketAssignment.ticket_id, func.max(TicketAssignment.replied_at).label("replied_at"))
        .where(TicketAssignment.role == AssignmentRole.LEAD, TicketAssignment.active.is_(True))
        .group_by(TicketAssignment.ticket_id)
        .subquery()
    )
    ratings = (
        select(
            Rating.ticket_id,
            func.count().label("rated"),
            func.count(case((Rating.level.in_(SATISFIED), 1))).label("satisfied"),
        )
        .group_by(Rating.ticket_id)
        .subquery()
    )
    direct = (
        select(TicketEvent.ticket_id).where(TicketEvent.action == "resolve_directly").distinct().subquery()
    )
    replied = lead.c.replied_at.is_not(None)
    figures = [
        func.count(Ticket.id).label("created"),
        *(func.count(case((Ticket.channel == c, 1))).label(f"ch_{c.value}") for c in Channel),
        func.count(direct.c.ticket_id).label("direct"),
        func.count(
            case((or_(replied, and_(Ticket.deadline_at.is_not(None), Ticket.deadline_at < now)), 1))
        ).label("due"),
        func.count(
            case(
                (and_(replied, or_(Ticket.deadline_at.is_(None), lead.c.replied_at <= Ticket.deadline_at)), 1)
            )
        ).label("on_time"),
        func.coalesce(func.sum(ratings.c.rated), 0).label("rated"),
        func.coalesce(func.sum(ratings.c.satisfied), 0).label("satisfied"),
    ]

    def query(*columns: Any) -> Any:
        return (
            select(*columns)
            .outerjoin(lead, lead.c.ticket_id == Ticket.id)
            .outerjoin(ratings, ratings.c.ticket_id == Ticket.id)
            .outerjoin(direct, direct.c.ticket_id == Ticket.id)
            .where(Ticket.created_at >= since, Ticket.created_at < until)
        )

    total = _row("", "合计", session.execute(query(*figures)).one())
    key = _key(by)
    grouped = session.execute(query(key.label("key"), *figures).group_by(key).order_by(key)).all()
    names = _labels(session, by, [r.key for r in grouped])
    rows = [
        _row("" if r.key is None else str(r.key), names.get(r.key, str(r.key or "未填写")), r)
        for r in grouped
    ]
    if by not in ("hour", "day"):
        rows.sort(key=lambda row: -row.created)  # the biggest groups first
    return rows, total


def _row(key: str, label: str, r: Any) -> TicketRow:
    return TicketRow(
        key=key,
        label=label,
        created=int(r.created),
        by_channel={c.value: int(getattr(r, f"ch_{c.value}")) for c in Channel},
        resolved_directly=int(r.direct),
        replies_due=int(r.due),
        replied_on_time=int(r.on_time),
        rated=int(r.rated),
        satisfied=int(r.satisfied),
    )


def _labels(session: Session, by: str, keys: list[Any]) -> dict[Any, str]:
    """Chinese names for the group keys (department names, category paths, agent names)."""
    present = [k for k in keys if k not in (None, "")]
    if by == "department":
        rows = session.execute(select(Department.id, Department.name).where(Department.id.in_(present)))
        return {**{k: v for k, v in rows}, None: "未派单"}
    if by == "agent":
        rows = session.execute(select(User.id, User.display_name).where(User.id.in_(present)))
        return {**{k: v for k, v in rows}, None: "非话务员受理"}
    if by == "category":
        return {code: f"{code} {catalog.category_label(session, code)}" for code in present}
    if by == "channel":
        return {c: labels.CHANNEL[Channel(c)] for c in present}
    return {}
