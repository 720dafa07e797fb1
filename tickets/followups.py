"""What follows a ticket event in the same transaction: its notifications and its revisit task.

Called by `tickets.service` for every new ticket and every event, so whichever page, API or job
moved the ticket, the citizen and the departments are told and the revisit (回访) is scheduled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets import deadlines, notify, work_calendar
from tickets.lifecycle import Action
from tickets.models import Ticket, TicketAssignment, TicketEvent
from tickets.models_outcomes import RevisitTask

# The outcome a revisit asks about: a department's reply (审核 passed) or the agent's direct answer.
OUTCOME_ACTIONS = (Action.REPLY.value, Action.RESOLVE_DIRECTLY.value)


def after_create(session: Session, ticket: Ticket, at: dt.datetime) -> None:
    notify.for_accepted(session, ticket, at)


def after_event(
    session: Session, ticket: Ticket, event: TicketEvent, shares: Sequence[TicketAssignment] | None = None
) -> None:
    """`shares`: the active shares when the event sent the ticket to departments (saves a query)."""
    notify.for_event(session, ticket, event, shares)
    session.flush()  # one flush for the change, its event and its notifications; the event's id
    if event.action in (Action.APPROVE_REPLY, Action.RESOLVE_DIRECTLY):
        schedule_revisit(session, ticket, event.at)


def outcome_event(session: Session, ticket: Ticket) -> TicketEvent | None:
    """The latest reply or direct answer of the ticket: what the citizen rates."""
    return session.scalar(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.action.in_(OUTCOME_ACTIONS))
        .order_by(TicketEvent.at.desc(), TicketEvent.id.desc())
        .limit(1)
    )


def revisit_day(now: dt.datetime, calendar: deadlines.Calendar = deadlines.NO_OVERRIDES) -> dt.date:
    """The next working day after `now` (local), when the revisit call is due."""
    return deadlines.add_working_days(now, 1, calendar=calendar).astimezone(deadlines.LOCAL).date()


def schedule_revisit(session: Session, ticket: Ticket, now: dt.datetime) -> RevisitTask | None:
    """One revisit task per outcome (scheduling twice returns the existing one)."""
    outcome = outcome_event(session, ticket)
    if outcome is None:
        return None
    task = session.scalar(select(RevisitTask).where(RevisitTask.outcome_event_id == outcome.id))
    if task is None:
        due_on = revisit_day(now, work_calendar.overrides(session))  # the city's holidays count too
        task = RevisitTask(ticket_id=ticket.id, outcome_event_id=outcome.id, due_on=due_on, created_at=now)
        session.add(task)
    return task
