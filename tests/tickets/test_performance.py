"""Department performance: the rates of the city's rankings, a weighted score, CSV and XLSX."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from tickets.models import (
    AssignmentRole,
    AssignmentState,
    Channel,
    Department,
    DepartmentKind,
    TicketAssignment,
    TicketEvent,
    TicketStatus,
)
from tickets.performance import Share, figures_for, score
from tickets.reports import department_performance, to_csv, to_xlsx
from tickets.service import create_ticket

T0 = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _share(**kw: object) -> Share:
    base: dict[str, object] = dict(
        department_id=1,
        assigned_at=T0,
        sign_deadline=T0 + DAY,
        signed_at=None,
        reply_deadline=T0 + 5 * DAY,
        replied_at=None,
        returned=False,
        reopened=False,
        satisfied=None,
    )
    return Share(**{**base, **kw})  # type: ignore[arg-type]


def test_rates_follow_their_definitions() -> None:
    shares = [
        _share(signed_at=T0 + DAY / 2, replied_at=T0 + 2 * DAY, satisfied=True),  # all on time
        _share(signed_at=T0 + 2 * DAY, replied_at=T0 + 6 * DAY, satisfied=False, reopened=True),  # late twice
        _share(returned=True),  # 退单
        _share(signed_at=T0 + DAY / 4),  # signed, reply not due yet
        _share(signed_at=T0 + DAY / 4, reply_deadline=T0 + DAY),  # signed, reply overdue
    ]
    f = figures_for(1, shares, now=T0 + 3 * DAY)
    assert (f.dispatched, f.signed_on_time, f.returned) == (5, 3, 1)
    assert f.sign_rate == pytest.approx(3 / 5) and f.return_rate == pytest.approx(1 / 5)
    assert (f.replies_due, f.replied_on_time) == (3, 1)  # two replied + one overdue
    assert f.completion_rate == pytest.approx(1 / 3)
    assert f.reopen_rate == pytest.approx(1 / 2) and f.satisfaction_rate == pytest.approx(1 / 2)


def test_a_rate_without_data_does_not_count_as_zero() -> None:
    assert (
        score(
            {"sign": 1.0, "completion": None, "satisfaction": None, "quality": None},
            {"sign": 20, "completion": 35},
        )
        == 100.0
    )
    assert score({"sign": None}, {"sign": 20}) is None


def test_departments_are_ranked_from_sql_and_exported(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        good = Department(code="good", name="市水务局", kind=DepartmentKind.BUREAU)
        slow = Department(code="slow", name="市住房和城乡建设局", kind=DepartmentKind.BUREAU)
        idle = Department(code="idle", name="市教育局", kind=DepartmentKind.BUREAU)
        session.add_all([good, slow, idle])
        session.flush()
        for n, (dept, sign_after, reply_after) in enumerate(
            [(good, 0.2, 1), (good, 0.5, 2), (slow, 3, 8), (slow, 0.5, 9)]
        ):
            ticket = create_ticket(session, channel=Channel.PHONE, content=f"诉求{n}", now=T0)
            ticket.status = TicketStatus.REPLIED
            ticket.sign_deadline_at, ticket.deadline_at = T0 + DAY, T0 + 5 * DAY
            session.add(
                TicketAssignment(
                    ticket_id=ticket.id,
                    department_id=dept.id,
                    role=AssignmentRole.LEAD,
                    state=AssignmentState.REPLIED,
                    assigned_at=T0,
                    signed_at=T0 + sign_after * DAY,
                    replied_at=T0 + reply_after * DAY,
                )
            )
            if n == 3:
                session.flush()
                session.add(
                    TicketEvent(ticket_id=ticket.id, action="reopen", to_status=TicketStatus.DISPATCHED)
                )
    with db() as session:
        ranked = department_performance(session, T0 - DAY, T0 + 30 * DAY, now=T0 + 20 * DAY)
    names = [d.name for d, _ in ranked]
    assert names == ["市水务局", "市住房和城乡建设局", "市教育局"]  # no data ranks last, not first
    good_f, slow_f = ranked[0][1], ranked[1][1]
    assert good_f.score == 100.0 and slow_f.completion_rate == 0.0 and slow_f.sign_rate == 0.5
    rows = list(csv.reader(io.StringIO(to_csv(ranked).decode("utf-8-sig"))))
    assert (
        rows[0][:3] == ["排名", "承办单位", "派单数"] and rows[1][1] == "市水务局" and rows[1][3] == "100.0%"
    )
    sheet = load_workbook(io.BytesIO(to_xlsx(ranked, "承办单位考核（2026年11月）"))).active
    assert (
        sheet is not None
        and sheet["A1"].value == "承办单位考核（2026年11月）"
        and sheet["B3"].value == "市水务局"
    )
