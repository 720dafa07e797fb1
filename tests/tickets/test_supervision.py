"""The SLA sweep: 催办 before the sign and reply deadlines, 督办 once they pass, each exactly once."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from tickets import dispatch, supervision
from tickets.models import Ticket, TicketEvent, Urgency
from tickets.models_outcomes import Notification

LOCAL = supervision.deadlines.LOCAL


def local(month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=LOCAL)


def _actions(db: sessionmaker[Session], number: str) -> list[str]:
    with db() as session:
        query = (
            select(TicketEvent.action).join(Ticket).where(Ticket.number == number).order_by(TicketEvent.id)
        )
        return [a for a in session.scalars(query) if a in ("urge", "supervise")]


def _told(db: sessionmaker[Session], kind: str) -> list[tuple[str, str]]:
    with db() as session:
        rows = session.scalars(
            select(Notification).where(Notification.kind == kind).order_by(Notification.id)
        )
        return [(r.audience.value, r.recipient) for r in rows]


def test_reminders_and_supervision_across_national_day_happen_once_per_deadline(
    db: sessionmaker[Session], departments: dict[str, int], make_ticket: Callable[..., str]
) -> None:
    # Dispatched the day before the holiday: signing is due at the close of 10-08, the 5-day reply
    # at the close of 10-13 (10-08, 10-09, the 调休 Saturday 10-10, 10-12, 10-13).
    number = make_ticket("housing", now=local(9, 30, 10))
    with db() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        sign_due, reply_due = ticket.sign_deadline_at, ticket.deadline_at
    assert sign_due == local(10, 8, 23, 59) + dt.timedelta(seconds=59)
    assert reply_due == local(10, 13, 23, 59) + dt.timedelta(seconds=59)

    assert supervision.sweep(db, local(10, 7, 12)).urged == []  # mid-holiday: more than a day left
    assert supervision.sweep(db, local(10, 8, 8)).urged == [number]
    assert supervision.sweep(db, local(10, 8, 9)).urged == []  # once
    assert supervision.sweep(db, local(10, 9, 8)).supervised == [number]
    assert supervision.sweep(db, local(10, 9, 9)).supervised == []
    assert _actions(db, number) == ["urge", "supervise"]
    assert _told(db, "ticket.urged") == [("department", "housing")]
    assert _told(db, "ticket.supervised") == [("department", "housing"), ("centre", "")]

    with transaction(db) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        dispatch.sign(session, ticket, departments["housing"], now=local(10, 9, 10))
    before_reply = reply_due - dt.timedelta(hours=12)
    assert supervision.sweep(db, before_reply).urged == [number]
    assert supervision.sweep(db, reply_due + dt.timedelta(minutes=1)).supervised == [number]
    assert supervision.sweep(db, reply_due + dt.timedelta(hours=5)).supervised == []
    assert _actions(db, number) == ["urge", "supervise", "urge", "supervise"]
    with db() as session:
        notes = session.scalars(
            select(TicketEvent.note).where(TicketEvent.action == "supervise").order_by(TicketEvent.id)
        ).all()
        assert notes[-1].startswith("已超过办结时限") and "请立即办结" in notes[-1]


def test_an_extension_gives_the_new_deadline_its_own_reminder_and_tells_the_citizen(
    db: sessionmaker[Session], departments: dict[str, int], make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("housing", now=local(11, 2, 9))
    with transaction(db) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        dispatch.sign(session, ticket, departments["housing"], now=local(11, 2, 10))
        first_due = ticket.deadline_at
        assert first_due is not None
    assert supervision.sweep(db, first_due - dt.timedelta(hours=2)).urged == [number]
    with transaction(db) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        request = dispatch.request_extension(
            session,
            ticket,
            departments["housing"],
            "需协调物业",
            dt.date(2026, 11, 20),
            now=first_due - dt.timedelta(hours=1),
        )
        dispatch.decide_extension(session, request, True, now=first_due - dt.timedelta(minutes=30))
    assert supervision.sweep(db, first_due + dt.timedelta(hours=1)).supervised == []  # not late any more
    assert supervision.sweep(db, local(11, 20, 12)).urged == [number]
    with db() as session:
        told = session.scalars(
            select(Notification).where(Notification.kind == "ticket.extension_approved")
        ).one()
        assert told.recipient == "13800001234" and "2026-11-20" in told.body


def test_a_short_limit_is_reminded_shortly_before_not_at_once(
    db: sessionmaker[Session], make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("gas", category_code="020302", urgency=Urgency.EMERGENCY, now=local(11, 3, 10))
    # Signing within 30 minutes: reminded from 7.5 minutes before, not at dispatch.
    assert supervision.sweep(db, local(11, 3, 10, 5)).urged == []
    assert supervision.sweep(db, local(11, 3, 10, 23)).urged == [number]


def test_two_workers_sweeping_at_once_supervise_once(
    db: sessionmaker[Session], make_ticket: Callable[..., str]
) -> None:
    numbers = [make_ticket("housing", now=local(11, 2, 9)) for _ in range(5)]
    late = local(11, 20, 9)
    results: list[supervision.SweepResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(supervision.sweep(db, late))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    supervised = sorted(n for result in results for n in result.supervised)
    assert supervised == sorted(numbers)
    with db() as session:
        assert len(session.scalars(select(TicketEvent).where(TicketEvent.action == "supervise")).all()) == 5


def test_the_sweep_job_runs_on_the_configured_database(
    db: sessionmaker[Session], job_environment: Any, make_ticket: Callable[..., str]
) -> None:
    from tickets import jobs

    number = make_ticket("housing", now=local(1, 5, 9))
    assert jobs.sla_sweep() == {"urged": [], "supervised": [number]}
    assert jobs.sla_sweep() == {"urged": [], "supervised": []}
