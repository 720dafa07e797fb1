"""Time limits count working days of the Chinese calendar: holidays skipped, 调休 days counted."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from tickets import deadlines
from tickets.deadlines import DeadlinePolicy, DeadlineState, Limit, Unit
from tickets.models import RequestKind, Urgency

LOCAL = deadlines.LOCAL


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=LOCAL)


# National Day 2026 (国办发明电〔2025〕7号, as the chinesecalendar package has it): off 10-01..10-07,
# with the Sunday 09-20 and the Saturday 10-10 as 调休 working days.
DISPATCHED = local(2026, 9, 30, 10, 0)


def test_three_working_days_skip_national_day_and_count_the_saturday_workday() -> None:
    deadline = deadlines.add_limit(DISPATCHED, Limit(3, Unit.WORKING_DAYS))
    # 10-08 (Thu), 10-09 (Fri), 10-10 (the 调休 Saturday): the close of that Saturday.
    assert deadline == local(2026, 10, 10, 23, 59, 59)
    assert deadline.tzinfo is dt.UTC  # stored in UTC
    # Had the Saturday not been a working day, the deadline would have been Monday 10-12.
    assert deadlines.is_workday(dt.date(2026, 10, 10)) and not deadlines.is_workday(dt.date(2026, 10, 11))


def test_the_calendar_of_the_2026_national_day() -> None:
    off = [dt.date(2026, 10, day) for day in range(1, 8)]
    assert not any(deadlines.is_workday(day) for day in off)
    assert deadlines.is_workday(dt.date(2026, 9, 20))  # a Sunday worked in exchange
    assert deadlines.is_workday(dt.date(2026, 10, 8))


@pytest.mark.parametrize(
    ("start", "limit", "expected"),
    [
        (DISPATCHED, "1wd", local(2026, 10, 8, 23, 59, 59)),  # 签收: the next working day
        (DISPATCHED, "5wd", local(2026, 10, 13, 23, 59, 59)),  # 求助
        (DISPATCHED, "2h", local(2026, 9, 30, 12, 0)),  # emergencies run on the clock
        (DISPATCHED, "24h", local(2026, 10, 1, 10, 0)),  # utilities too, holiday or not
        (local(2026, 9, 30, 15, 0), "8wh", local(2026, 10, 8, 15, 0)),  # 2 h before, 6 h after
        (local(2026, 10, 3, 11, 0), "1wd", local(2026, 10, 8, 23, 59, 59)),  # sent during the holiday
        (local(2026, 9, 19, 9, 0), "1wd", local(2026, 9, 20, 23, 59, 59)),  # the 调休 Sunday counts
        (local(2026, 9, 30, 23, 30), "1wd", local(2026, 10, 8, 23, 59, 59)),  # late: the day is not lost
    ],
)
def test_limits_in_each_unit(start: dt.datetime, limit: str, expected: dt.datetime) -> None:
    assert deadlines.add_limit(start, Limit.parse(limit)) == expected


def test_a_year_without_holiday_data_counts_monday_to_friday_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="tickets.deadlines"):
        # 2030-01-04 is a Friday; the package knows no 2030 holidays.
        deadline = deadlines.add_limit(local(2030, 1, 4, 10, 0), Limit(1, Unit.WORKING_DAYS))
    assert deadline == local(2030, 1, 7, 23, 59, 59)
    assert "no public-holiday data for 2030" in caplog.text


def test_the_policy_picks_urgency_then_category_then_request_kind() -> None:
    policy = DeadlinePolicy()
    assert str(policy.reply_limit(RequestKind.CONSULT, Urgency.NORMAL)) == "3wd"
    assert str(policy.reply_limit(RequestKind.HELP, Urgency.NORMAL)) == "5wd"
    assert str(policy.reply_limit(RequestKind.COMPLAINT, Urgency.NORMAL)) == "10wd"
    assert str(policy.reply_limit(RequestKind.SUGGESTION, Urgency.NORMAL)) == "15wd"
    assert str(policy.reply_limit(RequestKind.COMPLAINT, Urgency.NORMAL, "24h")) == "24h"  # water, power
    assert str(policy.reply_limit(RequestKind.COMPLAINT, Urgency.EMERGENCY, "24h")) == "2h"
    assert str(policy.sign_limit(Urgency.NORMAL)) == "1wd"
    changed = policy.with_overrides({"complaint": "7wd", "sign.urgent": "1h", "max_extension": "20wd"})
    assert str(changed.reply_limit(RequestKind.COMPLAINT, Urgency.NORMAL)) == "7wd"
    assert str(changed.sign_limit(Urgency.URGENT)) == "1h"
    assert changed.max_extension == Limit(20, Unit.WORKING_DAYS)
    assert (
        str(policy.reply_limit(RequestKind.COMPLAINT, Urgency.NORMAL)) == "10wd"
    )  # the original is untouched
    with pytest.raises(ValueError, match="bad time limit"):
        policy.with_overrides({"complaint": "ten days"})


def test_an_emergency_must_be_signed_before_its_reply_is_due() -> None:
    times = deadlines.compute(DeadlinePolicy(), DISPATCHED, RequestKind.HELP, Urgency.EMERGENCY)
    assert times.sign == local(2026, 9, 30, 10, 30) and times.reply == local(2026, 9, 30, 12, 0)
    assert times.reply_limit.label == "2小时"


def test_overdue_and_due_soon() -> None:
    deadline = local(2026, 10, 10, 23, 59, 59)
    assert deadlines.state(deadline, local(2026, 10, 8, 9, 0)) is DeadlineState.ON_TIME
    assert deadlines.state(deadline, local(2026, 10, 10, 9, 0)) is DeadlineState.DUE_SOON
    assert deadlines.state(deadline, local(2026, 10, 11, 0, 0)) is DeadlineState.OVERDUE
    assert deadlines.state(None, local(2026, 10, 11)) is DeadlineState.NONE


def test_an_extension_must_be_asked_in_time_for_a_later_working_day_within_the_cap() -> None:
    policy = DeadlinePolicy()
    current = local(2026, 10, 10, 23, 59, 59)
    before = local(2026, 10, 9, 10, 0)
    assert deadlines.extension_problem(policy, current, dt.date(2026, 10, 16), before) is None
    assert "晚于当前办结时限" in (
        deadlines.extension_problem(policy, current, dt.date(2026, 10, 9), before) or ""
    )
    assert "工作日" in (deadlines.extension_problem(policy, current, dt.date(2026, 10, 11), before) or "")
    assert "不能超过15个工作日" in (
        deadlines.extension_problem(policy, current, dt.date(2026, 12, 1), before) or ""
    )
    late = local(2026, 10, 11, 9, 0)
    assert "已超过办结时限" in (
        deadlines.extension_problem(policy, current, dt.date(2026, 10, 16), late) or ""
    )
