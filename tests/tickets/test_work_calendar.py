"""A city's working-day overrides count for deadlines and revisits like the national calendar."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from tickets import deadlines, work_calendar
from tickets.followups import revisit_day
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
