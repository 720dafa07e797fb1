"""Working-day overrides (节假日调整) on top of the State Council's calendar, kept in SQL.

`chinesecalendar` knows the national holidays and 调休 days as announced; a city adds its own
(a local holiday, a day the centre declares off after a disaster, next year's calendar before the
package is updated). Deadlines read these overrides through `DeadlinePolicy.with_calendar`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Date, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from hotline.db import Base, UTCDateTime, utcnow


class CalendarDay(Base):
    """One day declared a working day or a day off, whatever the national calendar says."""

    __tablename__ = "calendar_days"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    workday: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(100), default="")
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


def overrides(session: Session) -> dict[dt.date, bool]:
    """Every override: day -> True for a working day, False for a day off."""
    with session.no_autoflush:  # read while a dispatch is half-written: nothing pending is needed
        rows = session.execute(select(CalendarDay.day, CalendarDay.workday))
        return {day: workday for day, workday in rows}
