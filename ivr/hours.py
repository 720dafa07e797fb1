"""Business hours on the Chinese working-day calendar (public holidays and 调休 workdays)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import chinese_calendar

log = logging.getLogger(__name__)


def is_workday(day: dt.date) -> bool:
    """A working day by the State Council's calendar; weekdays outside the known years."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        # The package knows only the years the State Council has announced; it is updated yearly.
        log.warning("no holiday data for %s; update the chinesecalendar package", day.year)
        return day.weekday() < 5


@dataclass(frozen=True)
class BusinessHours:
    """When the day branch of a menu applies: opening times, on working days or every day."""

    opens: dt.time
    closes: dt.time
    workdays_only: bool = True
    timezone: str = "Asia/Shanghai"

    def is_open(self, now: dt.datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone))
        if self.workdays_only and not is_workday(local.date()):
            return False
        return self.opens <= local.time() < self.closes
