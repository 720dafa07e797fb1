"""Time limits (时限) on the Chinese working-day calendar: sign and reply deadlines (no I/O).

A limit is an amount and a unit: minutes or hours on the clock (emergencies and utilities run
around the clock), working hours (office hours of working days) or working days. Working days
follow the State Council's calendar (`chinese_calendar`): public holidays are off and the
调休 weekend days are working days; a city's own overrides (`tickets.work_calendar`, passed in
as `calendar`) come on top. N working days end at the close (23:59:59 local) of the Nth
working day after the day of dispatch, so a ticket dispatched late in the day loses nothing.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

import chinese_calendar

from tickets.models import RequestKind, Urgency

log = logging.getLogger(__name__)

LOCAL = ZoneInfo("Asia/Shanghai")
END_OF_DAY = dt.time(23, 59, 59)
# A ticket is "due soon" (临期) this long before its deadline: the reminder (催办) window.
DUE_SOON = dt.timedelta(hours=24)


# A city's working-day overrides: day -> True (working day) or False (day off).
Calendar = Mapping[dt.date, bool]
NO_OVERRIDES: Calendar = {}


def is_workday(day: dt.date, calendar: Calendar = NO_OVERRIDES) -> bool:
    """A working day by the city's overrides, else the State Council's calendar; else Monday-Friday."""
    if day in calendar:
        return calendar[day]
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        _warn_unknown_year(day.year)
        return day.weekday() < 5


@functools.cache
def _warn_unknown_year(year: int) -> None:
    # The package knows only the years announced so far; it is updated every December.
    log.warning("no public-holiday data for %s: counting Monday-Friday; update chinesecalendar", year)


class Unit(enum.StrEnum):
    MINUTES = "m"
    HOURS = "h"  # on the clock
    WORKING_HOURS = "wh"  # office hours of working days
    WORKING_DAYS = "wd"


_LABELS = {
    Unit.MINUTES: "分钟",
    Unit.HOURS: "小时",
    Unit.WORKING_HOURS: "个工作小时",
    Unit.WORKING_DAYS: "个工作日",
}
_LIMIT = re.compile(r"^\s*(\d+)\s*(wd|wh|h|m)\s*$")


@dataclass(frozen=True)
class Limit:
    amount: int
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> Limit:
        """`"3wd"`, `"8wh"`, `"24h"` or `"30m"`."""
        match = _LIMIT.match(text)
        if match is None or int(match[1]) <= 0:
            raise ValueError(f"bad time limit {text!r}: use e.g. 3wd, 8wh, 24h or 30m")
        return cls(int(match[1]), Unit(match[2]))

    def __str__(self) -> str:
        return f"{self.amount}{self.unit.value}"

    @property
    def label(self) -> str:
        return f"{self.amount}{_LABELS[self.unit]}"


@dataclass(frozen=True)
class OfficeHours:
    """The hours that count as working hours on a working day (one span, local time)."""

    opens: dt.time = dt.time(9, 0)
    closes: dt.time = dt.time(17, 0)


def end_of_day(day: dt.date, tz: ZoneInfo = LOCAL) -> dt.datetime:
    return dt.datetime.combine(day, END_OF_DAY, tzinfo=tz).astimezone(dt.UTC)


def add_working_days(
    start: dt.datetime, days: int, tz: ZoneInfo = LOCAL, calendar: Calendar = NO_OVERRIDES
) -> dt.datetime:
    """The close of the `days`-th working day after the local day of `start`."""
    day = start.astimezone(tz).date()
    counted = 0
    while counted < days:
        day += dt.timedelta(days=1)
        counted += is_workday(day, calendar)
    return end_of_day(day, tz)


def add_working_hours(
    start: dt.datetime,
    hours: int,
    tz: ZoneInfo = LOCAL,
    office: OfficeHours = OfficeHours(),
    calendar: Calendar = NO_OVERRIDES,
) -> dt.datetime:
    """`start` plus `hours` counted only inside office hours of working days."""
    local = start.astimezone(tz)
    left = dt.timedelta(hours=hours)
    day = local.date()
    while True:
        if is_workday(day, calendar):
            opens = dt.datetime.combine(day, office.opens, tzinfo=tz)
            closes = dt.datetime.combine(day, office.closes, tzinfo=tz)
            begin = max(opens, local)
            if begin < closes:
                if begin + left <= closes:
                    return (begin + left).astimezone(dt.UTC)
                left -= closes - begin
        day += dt.timedelta(days=1)
        local = dt.datetime.combine(day, dt.time(0), tzinfo=tz)


def add_limit(
    start: dt.datetime, limit: Limit, tz: ZoneInfo = LOCAL, calendar: Calendar = NO_OVERRIDES
) -> dt.datetime:
    """The deadline of `limit` counted from `start` (a UTC or zone-aware time)."""
    if start.tzinfo is None:
        raise ValueError("deadlines need a zone-aware start time")
    if limit.unit is Unit.MINUTES:
        return (start + dt.timedelta(minutes=limit.amount)).astimezone(dt.UTC)
    if limit.unit is Unit.HOURS:
        return (start + dt.timedelta(hours=limit.amount)).astimezone(dt.UTC)
    if limit.unit is Unit.WORKING_HOURS:
        return add_working_hours(start, limit.amount, tz, calendar=calendar)
    return add_working_days(start, limit.amount, tz, calendar)


def _limits(table: Mapping[str, str]) -> dict[str, Limit]:
    return {key: Limit.parse(value) for key, value in table.items()}


@dataclass(frozen=True)
class DeadlinePolicy:
    """How long departments have, as configuration; the defaults follow common 12345 practice.

    The reply limit is the urgency's when it has one (特急 2 hours, 紧急 24 hours), else the
    category's own (water, power and gas: 24 hours), else the request kind's.
    """

    sign: Mapping[Urgency, Limit] = field(
        default_factory=lambda: {
            Urgency.NORMAL: Limit(1, Unit.WORKING_DAYS),
            Urgency.URGENT: Limit(2, Unit.HOURS),
            Urgency.EMERGENCY: Limit(30, Unit.MINUTES),
        }
    )
    by_urgency: Mapping[Urgency, Limit] = field(
        default_factory=lambda: {
            Urgency.EMERGENCY: Limit(2, Unit.HOURS),
            Urgency.URGENT: Limit(24, Unit.HOURS),
        }
    )
    by_kind: Mapping[RequestKind, Limit] = field(
        default_factory=lambda: {
            RequestKind.CONSULT: Limit(3, Unit.WORKING_DAYS),
            RequestKind.HELP: Limit(5, Unit.WORKING_DAYS),
            RequestKind.COMPLAINT: Limit(10, Unit.WORKING_DAYS),
            RequestKind.REPORT: Limit(10, Unit.WORKING_DAYS),
            RequestKind.SUGGESTION: Limit(15, Unit.WORKING_DAYS),
            RequestKind.PRAISE: Limit(5, Unit.WORKING_DAYS),
        }
    )
    # An extension may not push the reply deadline further than this past the original one.
    max_extension: Limit = Limit(15, Unit.WORKING_DAYS)
    # The city's working-day overrides, read from SQL where deadlines are set (`with_calendar`).
    calendar: Calendar = field(default_factory=dict)

    def with_calendar(self, calendar: Calendar) -> DeadlinePolicy:
        return replace(self, calendar=calendar)

    def with_overrides(self, table: Mapping[str, str]) -> DeadlinePolicy:
        """A copy with limits replaced, keyed like `{"complaint": "7wd", "sign.normal": "1wd",
        "urgency.emergency": "2h", "max_extension": "20wd"}` (e.g. from a TOML table)."""
        sign, urgency, kind = dict(self.sign), dict(self.by_urgency), dict(self.by_kind)
        max_extension = self.max_extension
        for key, limit in _limits(table).items():
            group, _, name = key.rpartition(".")
            if group == "sign":
                sign[Urgency(name)] = limit
            elif group == "urgency":
                urgency[Urgency(name)] = limit
            elif group in ("", "kind") and name == "max_extension":
                max_extension = limit
            elif group in ("", "kind"):
                kind[RequestKind(name)] = limit
            else:
                raise ValueError(f"unknown time-limit key {key!r}")
        return replace(self, sign=sign, by_urgency=urgency, by_kind=kind, max_extension=max_extension)

    def sign_limit(self, urgency: Urgency) -> Limit:
        return self.sign[urgency]

    def reply_limit(self, kind: RequestKind, urgency: Urgency, category_limit: str = "") -> Limit:
        if urgency in self.by_urgency:
            return self.by_urgency[urgency]
        if category_limit:
            return Limit.parse(category_limit)
        return self.by_kind[kind]


DEFAULT_POLICY = DeadlinePolicy()


@dataclass(frozen=True)
class Deadlines:
    sign: dt.datetime
    reply: dt.datetime
    reply_limit: Limit


def compute(
    policy: DeadlinePolicy,
    dispatched_at: dt.datetime,
    kind: RequestKind,
    urgency: Urgency,
    category_limit: str = "",
    tz: ZoneInfo = LOCAL,
) -> Deadlines:
    """The sign and reply deadlines of a ticket dispatched at `dispatched_at`."""
    reply_limit = policy.reply_limit(kind, urgency, category_limit)
    sign = add_limit(dispatched_at, policy.sign_limit(urgency), tz, policy.calendar)
    reply = add_limit(dispatched_at, reply_limit, tz, policy.calendar)
    # Signing can never be due after the reply itself (a 2-hour emergency, say).
    return Deadlines(sign=min(sign, reply), reply=reply, reply_limit=reply_limit)


class DeadlineState(enum.StrEnum):
    NONE = "none"
    ON_TIME = "on_time"
    DUE_SOON = "due_soon"  # 临期
    OVERDUE = "overdue"  # 超期


def state(deadline: dt.datetime | None, now: dt.datetime, warn: dt.timedelta = DUE_SOON) -> DeadlineState:
    if deadline is None:
        return DeadlineState.NONE
    if now > deadline:
        return DeadlineState.OVERDUE
    return DeadlineState.DUE_SOON if deadline - now <= warn else DeadlineState.ON_TIME


def extension_problem(
    policy: DeadlinePolicy,
    current: dt.datetime | None,
    proposed: dt.date,
    now: dt.datetime,
    tz: ZoneInfo = LOCAL,
) -> str | None:
    """Why an extension to the close of `proposed` cannot be asked for (Chinese, for the user), or None."""
    if current is None:
        return "该工单没有办结时限，无需延期"
    if now > current:
        return "已超过办结时限，不能再申请延期，请尽快办结"
    if end_of_day(proposed, tz) <= current:
        return "申请的新时限必须晚于当前办结时限"
    if not is_workday(proposed, policy.calendar):
        return "申请的新时限应为工作日"
    if end_of_day(proposed, tz) > add_limit(current, policy.max_extension, tz, policy.calendar):
        return f"延期不能超过{policy.max_extension.label}"
    return None
