"""回访: a task the next working day after review; the IVR's result closes or reopens the ticket."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from tickets import dispatch, revisit
from tickets.lifecycle import Action
from tickets.models import Channel, Ticket, TicketEvent, TicketStatus
from tickets.models_outcomes import Notification, Rating, RevisitState, Satisfaction
from tickets.service import apply, create_ticket

LOCAL = dispatch.deadlines.LOCAL


def local(month: int, day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=LOCAL)


def _replied(
    db: sessionmaker[Session], departments: dict[str, int], make: Callable[..., str], at: dt.datetime
) -> str:
    number = make("housing", now=at)
    with transaction(db) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        dispatch.sign(session, ticket, departments["housing"], now=at)
        dispatch.reply(session, ticket, departments["housing"], "已修复。", now=at)
    return number


def _ticket(session: Session, number: str) -> Ticket:
    return session.scalars(select(Ticket).where(Ticket.number == number)).one()


def test_an_approved_reply_is_revisited_the_next_working_day_and_closed_when_satisfied(
    db: sessionmaker[Session], departments: dict[str, int], make_ticket: Callable[..., str]
) -> None:
    number = _replied(db, departments, make_ticket, local(9, 29, 10))
    with transaction(db) as session:
        revisit.approve_reply(session, _ticket(session, number), now=local(9, 30, 15))
    with db() as session:
        assert revisit.due_revisits(session, dt.date(2026, 10, 7)) == []  # National Day
        ((task, ticket),) = revisit.due_revisits(session, dt.date(2026, 10, 8))
        assert ticket.number == number and task.due_on == dt.date(2026, 10, 8)
    # The outbound call: the citizen presses 2 (满意).
    with transaction(db) as session:
        rating = revisit.revisit(session, _ticket(session, number), revisit.level_for_key("2"), "ivr")
        assert rating.level is Satisfaction.SATISFIED
    with db() as session:
        ticket = _ticket(session, number)
        assert ticket.status is TicketStatus.CLOSED and ticket.closed_at is not None
        query = select(TicketEvent.action).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        actions = session.scalars(query).all()  # in id order: PostgreSQL returns unordered rows otherwise
        assert actions[-3:] == ["approve_reply", "revisit", "close"]
        assert revisit.due_revisits(session, dt.date(2026, 10, 9)) == []
        closed = session.scalars(select(Notification).where(Notification.kind == "ticket.closed")).one()
        assert closed.recipient == "13800001234"
    with pytest.raises(revisit.RevisitError, match="已评价"), transaction(db) as session:
        revisit.revisit(session, _ticket(session, number), Satisfaction.SATISFIED, "ivr")


def test_an_unsatisfied_revisit_sends_the_ticket_back_to_the_lead_department(
    db: sessionmaker[Session], departments: dict[str, int], make_ticket: Callable[..., str]
) -> None:
    number = _replied(db, departments, make_ticket, local(11, 2, 10))
    with transaction(db) as session:
        revisit.approve_reply(session, _ticket(session, number), now=local(11, 2, 15))
        revisit.revisit(
            session, _ticket(session, number), revisit.level_for_key("5"), "ivr", now=local(11, 3, 10)
        )
    with db() as session:
        ticket = _ticket(session, number)
        assert ticket.status is TicketStatus.DISPATCHED and ticket.department_id == departments["housing"]
        assert ticket.deadline_at is not None and ticket.deadline_at > local(11, 4)  # a fresh time limit
        told = session.scalars(
            select(Notification).where(Notification.kind == "ticket.dispatched").order_by(Notification.id)
        ).all()
        assert "（重办）" in told[-1].body and told[-1].recipient == "housing"
        rating = session.scalars(select(Rating)).one()
        assert (
            rating.level is Satisfaction.VERY_DISSATISFIED and rating.department_id == departments["housing"]
        )


def test_a_direct_answer_is_revisited_too_and_an_unhappy_citizen_goes_to_the_centre(
    db: sessionmaker[Session], departments: dict[str, int]
) -> None:
    numbers = []
    with transaction(db) as session:
        for _ in range(2):
            ticket = create_ticket(
                session, channel=Channel.PHONE, content="社保卡怎么补办", caller_phone="13900000001"
            )
            apply(
                session,
                ticket,
                Action.RESOLVE_DIRECTLY,
                note="携带身份证到社保窗口补办。",
                now=local(11, 6, 10),
            )
            numbers.append(ticket.number)
    with db() as session:
        assert [t.number for _task, t in revisit.due_revisits(session, dt.date(2026, 11, 9))] == numbers
    with transaction(db) as session:
        revisit.revisit(session, _ticket(session, numbers[0]), Satisfaction.BASICALLY_SATISFIED, "phone")
        revisit.revisit(session, _ticket(session, numbers[1]), Satisfaction.DISSATISFIED, "ivr")
    with db() as session:
        assert _ticket(session, numbers[0]).status is TicketStatus.CLOSED
        assert _ticket(session, numbers[1]).status is TicketStatus.REVISITED  # the centre decides what next
        unhappy = session.scalars(select(Notification).where(Notification.kind == "ticket.unsatisfied")).one()
        assert unhappy.audience.value == "centre" and numbers[1] in unhappy.body
    # The centre can still send it to a department (重办 from 回访).
    with transaction(db) as session:
        dispatch.dispatch(session, _ticket(session, numbers[1]), departments["human-resources"])
        assert _ticket(session, numbers[1]).status is TicketStatus.DISPATCHED


def test_what_cannot_be_rated_is_refused_in_words(
    db: sessionmaker[Session], departments: dict[str, int], make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("housing")
    with pytest.raises(revisit.RevisitError, match="尚无办理结果"), transaction(db) as session:
        revisit.revisit(session, _ticket(session, number), Satisfaction.SATISFIED, "ivr")
    with pytest.raises(revisit.RevisitError, match="1 至 5"):
        revisit.level_for_key("9")
    with db() as session:
        task_states = {t.state for t, _ in revisit.due_revisits(session, dt.date(2030, 1, 1))}
        assert task_states <= {RevisitState.PENDING}
