"""Working-day overrides (节假日调整) on top of the State Council's calendar, kept in SQL.

`chinesecalendar` knows the national holidays and 调休 days as announced; a city adds its own
(a local holiday, a day the centre declares off after a disaster, next year's calendar before the
package is updated). Deadlines read these overrides through `DeadlinePolicy.with_calendar`.
Every dispatch reads them, so they are kept per process (`tickets.table_cache`: dropped when this
process writes the table, at most a minute old after an edit made by another process).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType

from sqlalchemy import Boolean, Date, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from hotline.db import Base, UTCDateTime, utcnow
from tickets.table_cache import TableCache


class CalendarDay(Base):
    """One day declared a working day or a day off, whatever the national calendar says."""

    __tablename__ = "calendar_days"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    workday: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(100), default="")
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


def _load(session: Session) -> Mapping[dt.date, bool]:
    with session.no_autoflush:  # read while a dispatch is half-written: nothing pending is needed
        rows = session.execute(select(CalendarDay.day, CalendarDay.workday))
        return MappingProxyType({day: workday for day, workday in rows})  # shared: read-only


_CACHE = TableCache(CalendarDay.__tablename__, _load)


def overrides(session: Session) -> Mapping[dt.date, bool]:
    """Every override: day -> True for a working day, False for a day off."""
    return _CACHE.get(session)
