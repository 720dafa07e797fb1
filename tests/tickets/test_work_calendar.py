"""A city's working-day overrides count for deadlines and revisits like the national calendar."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import make_engine, make_session_factory, transaction
from tickets import deadlines, dispatch, work_calendar
from tickets.followups import revisit_day
from tickets.models import Category, Channel
from tickets.service import create_ticket
from tickets.work_calendar import CalendarDay

FRIDAY_NOON = dt.datetime(2026, 11, 20, 4, 0, tzinfo=dt.UTC)  # 12:00 in Shanghai


def test_a_declared_day_off_and_a_declared_working_saturday(db: sessionmaker[Session]) -> None:
    assert revisit_day(FRIDAY_NOON) == dt.date(2026, 11, 23)  # Monday, by the national calendar
    with transaction(db) as session:
        session.add(CalendarDay(day=dt.date(2026, 11, 23), workday=False, note="本市放假"))
    with db() as session:
        calendar = work_calendar.overrides(session)
    assert revisit_day(FRIDAY_NOON, calendar) == dt.date(2026, 11, 24)
    with transaction(db) as session:
        session.add(CalendarDay(day=dt.date(2026, 11, 21), workday=True, note="补班"))
    with db() as session:
        calendar = work_calendar.overrides(session)
    assert revisit_day(FRIDAY_NOON, calendar) == dt.date(2026, 11, 21)
    policy = deadlines.DEFAULT_POLICY.with_calendar(calendar)
    problem = deadlines.extension_problem(
        policy, FRIDAY_NOON + dt.timedelta(days=1), dt.date(2026, 11, 23), FRIDAY_NOON
    )
    assert problem == "申请的新时限应为工作日"


def _dispatched(session: Session, department_id: int) -> tuple[dt.date, dt.date]:
    """The local dates of the sign and reply deadlines of a street-light ticket sent on Friday noon."""
    ticket = create_ticket(
        session, channel=Channel.PHONE, content="路灯不亮", category_code="010101", now=FRIDAY_NOON
    )
    dispatch.dispatch(session, ticket, department_id, now=FRIDAY_NOON)
    assert ticket.sign_deadline_at is not None and ticket.deadline_at is not None
    return (
        ticket.sign_deadline_at.astimezone(deadlines.LOCAL).date(),
        ticket.deadline_at.astimezone(deadlines.LOCAL).date(),
    )


def test_deadlines_follow_calendar_and_time_limit_edits_at_once(
    db: sessionmaker[Session], departments: dict[str, int], engine: Engine
) -> None:
    housing = departments["housing"]
    with transaction(db) as session:  # Monday the 23rd signs; five working days end on the 27th
        assert _dispatched(session, housing) == (dt.date(2026, 11, 23), dt.date(2026, 11, 27))
    with transaction(db) as session:
        session.add(CalendarDay(day=dt.date(2026, 11, 23), workday=False, note="本市放假"))
    with transaction(db) as session:
        assert _dispatched(session, housing) == (dt.date(2026, 11, 24), dt.date(2026, 11, 30))
    # An override added in a transaction counts inside it, and not at all once it is rolled back.
    with pytest.raises(LookupError), transaction(db) as session:
        session.add(CalendarDay(day=dt.date(2026, 11, 24), workday=False, note="撤回"))
        session.flush()
        assert _dispatched(session, housing)[0] == dt.date(2026, 11, 25)
        raise LookupError("rolled back")
    with transaction(db) as session:
        assert _dispatched(session, housing)[0] == dt.date(2026, 11, 24)
    # A category's own time limit, changed, counts for the next dispatch.
    with transaction(db) as session:
        street_lights = session.get_one(Category, "010101")
        street_lights.reply_limit = "2wd"
    with transaction(db) as session:
        assert _dispatched(session, housing) == (dt.date(2026, 11, 24), dt.date(2026, 11, 25))
    # Another process (here another engine) edits: seen once this process's copy is older than allowed.
    other = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        with transaction(make_session_factory(other)) as session:
            session.add(CalendarDay(day=dt.date(2026, 11, 24), workday=False, note="另一进程"))
    finally:
        other.dispose()
    cache = work_calendar._CACHE
    aged, cache.max_age_s = cache.max_age_s, 0.0
    try:
        with transaction(db) as session:
            assert _dispatched(session, housing)[0] == dt.date(2026, 11, 25)
    finally:
        cache.max_age_s = aged
