"""Reports: calls and tickets per period and group, hot topics, charts data, CSV and XLSX export."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Call, Seat, SeatEvent
from hotline.db import transaction
from tickets.models import (
    AssignmentRole,
    AssignmentState,
    Category,
    Channel,
    Ticket,
    TicketAssignment,
    TicketEvent,
    TicketStatus,
)
from tickets.models_outcomes import Rating, Satisfaction

Login = Callable[[FlaskClient, str], str]
DAY = "2026-11-20"  # a Friday; 09:00 in Shanghai is 01:00 UTC


def utc(hh_mm_ss: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{DAY}T{hh_mm_ss}+00:00")


def _seed_calls(db: sessionmaker[Session]) -> None:
    """Four calls offered (two within 15 s, one abandoned at 30 s), one short abandon, one seat's day."""
    with transaction(db) as session:
        seat_id = session.scalars(select(Seat.id).where(Seat.extension == "8001")).one()
        calls = [  # queued, answered after s, ended after s
            ("c1", "01:00:00", 10, 130, seat_id, "general"),
            ("c2", "01:05:00", 20, 80, seat_id, "general"),
            ("c3", "01:10:00", None, 30, None, "general"),
            ("c4", "01:20:00", None, 3, None, "general"),
            ("c5", "02:10:00", 5, 65, seat_id, "enterprise"),
        ]
        for call_id, queued, answered, ended, seat, queue in calls:
            at = utc(queued)
            session.add(
                Call(
                    call_id=call_id,
                    arrived_at=at,
                    queued_at=at,
                    queue=queue,
                    agent_answered_at=at + dt.timedelta(seconds=answered) if answered is not None else None,
                    ended_at=at + dt.timedelta(seconds=ended),
                    seat_id=seat,
                )
            )
        states = [
            ("00:50:00", "logged_out", "ready"),
            ("01:00:10", "ready", "talking"),
            ("01:02:10", "talking", "wrap_up"),
            ("01:02:40", "wrap_up", "ready"),
            ("01:50:00", "ready", "logged_out"),
        ]
        for at, before, after in states:
            session.add(SeatEvent(seat_id=seat_id, at=utc(at), from_state=before, to_state=after))


def _seed_tickets(db: sessionmaker[Session], agent_id: int, department_id: int) -> None:
    with transaction(db) as session:
        session.add_all(
            [
                Category(code="010000", name="城乡建设", level=1),
                Category(code="010100", name="市政设施", parent_code="010000", level=2),
                Category(code="010101", name="路灯", parent_code="010100", level=3),
            ]
        )
        session.flush()
        specs = [
            ("T1", Channel.PHONE, "路灯坏了", "小区门口路灯坏了三天，晚上很黑", "钟山区"),
            ("T2", Channel.PORTAL, "路灯不亮", "幸福路的路灯不亮", "水城区"),
            ("T3", Channel.PHONE, "公积金", "咨询公积金提取需要什么材料", ""),
        ]
        tickets = {}
        for number, channel, title, content, district in specs:
            ticket = Ticket(
                number=number,
                channel=channel,
                title=title,
                content=content,
                district=district,
                category_code="010101" if number != "T3" else "",
                created_by_id=agent_id if channel is Channel.PHONE else None,
                created_at=utc("02:00:00"),
                department_id=department_id if number != "T3" else None,
                deadline_at=utc("09:00:00") if number != "T3" else None,
                status=TicketStatus.REPLIED if number == "T1" else TicketStatus.DISPATCHED,
            )
            session.add(ticket)
            tickets[number] = ticket
        session.flush()
        for number, replied in (("T1", utc("08:00:00")), ("T2", None)):
            session.add(
                TicketAssignment(
                    ticket_id=tickets[number].id,
                    department_id=department_id,
                    role=AssignmentRole.LEAD,
                    state=AssignmentState.REPLIED if replied else AssignmentState.DISPATCHED,
                    assigned_at=utc("02:00:00"),
                    replied_at=replied,
                )
            )
        direct = TicketEvent(
            ticket_id=tickets["T3"].id,
            action="resolve_directly",
            to_status=TicketStatus.RESOLVED_DIRECTLY,
            at=utc("02:00:00"),
        )
        reply = TicketEvent(ticket_id=tickets["T1"].id, action="reply", to_status=TicketStatus.REPLIED)
        session.add_all([direct, reply])
        session.flush()
        session.add(
            Rating(
                ticket_id=tickets["T1"].id,
                outcome_event_id=reply.id,
                department_id=department_id,
                level=Satisfaction.SATISFIED,
                channel="portal",
            )
        )


@pytest.fixture
def lead(app: Flask, login_as: Login) -> FlaskClient:
    client = app.test_client()
    login_as(client, "lead")
    return client


def _cells(page: str, label: str) -> list[str]:
    """The cells of the table row whose first cell is `label`."""
    import re

    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", row, re.S)]
        if cells and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r}")


def test_call_report_counts_service_level_abandons_and_occupancy(
    lead: FlaskClient, db: sessionmaker[Session]
) -> None:
    _seed_calls(db)
    page = lead.get(f"/reports/calls?period=day&date={DAY}").get_data(as_text=True)
    # Offered 4 (the 3-second hang-up is a short abandon), 2 within 15 s, ASA (10+20+5)/3,
    # AHT mean talk 80 s + mean wrap-up 30 s, occupancy (120+30) / (120+30+610+2840).
    assert _cells(page, "合计") == [
        "合计", "4", "3", "2", "50.0%", "75.0%", "1", "1", "11.7", "110.0", "4.2%",
    ]  # fmt: skip
    assert _cells(page, "2026-11-20 09:00")[1:4] == ["3", "2", "1"]  # local hours
    by_queue = lead.get(f"/reports/calls?period=day&date={DAY}&by=queue").get_data(as_text=True)
    assert _cells(by_queue, "涉企专席")[1:3] == ["1", "1"]
    by_agent = lead.get(f"/reports/calls?period=week&date={DAY}&by=agent").get_data(as_text=True)
    assert (
        _cells(by_agent, "8001 话务员01")[1:3] == ["3", "3"]
        and _cells(by_agent, "8001 话务员01")[-1] == "4.2%"
    )
    exported = lead.get(f"/reports/calls?period=day&date={DAY}&format=csv")
    assert "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "时段" and rows[-1][:2] == ["合计", "4"]


def test_a_transferred_calls_handling_time_is_split_between_its_agents(
    lead: FlaskClient, db: sessionmaker[Session]
) -> None:
    """8001 talks 60 s and transfers to 8002, who talks 90 s; each wraps up as its own records say."""
    with transaction(db) as session:
        first = session.scalars(select(Seat.id).where(Seat.extension == "8001")).one()
        seat = Seat(extension="8002", name="8002座席", sip_password="y", skills={"general": 1})
        session.add(seat)
        session.flush()
        colleague = seat.id
        at = utc("01:00:00")
        session.add(
            Call(
                call_id="t1",
                arrived_at=at,
                queued_at=at,
                queue="general",
                agent_answered_at=at + dt.timedelta(seconds=8),
                ended_at=at + dt.timedelta(seconds=8 + 60 + 90),
                seat_id=first,  # the CDR keeps the agent the ACD connected
            )
        )
        history = [  # seat, seconds after queueing, from, to, reason
            (first, -600, "logged_out", "ready", ""),
            (colleague, -600, "logged_out", "ready", ""),
            (first, 5, "ready", "offered", ""),
            (first, 8, "offered", "talking", ""),
            (colleague, 60, "ready", "offered", "transfer"),
            (colleague, 68, "offered", "talking", ""),
            (first, 68, "talking", "wrap_up", ""),
            (first, 78, "wrap_up", "ready", ""),
            (colleague, 158, "talking", "wrap_up", ""),
            (colleague, 178, "wrap_up", "ready", ""),
            (first, 3600, "ready", "logged_out", ""),
            (colleague, 3600, "ready", "logged_out", ""),
        ]
        for seat_id, after, before, state, reason in history:
            when = at + dt.timedelta(seconds=after)
            session.add(SeatEvent(seat_id=seat_id, at=when, from_state=before, to_state=state, reason=reason))
    by_agent = lead.get(f"/reports/calls?period=day&date={DAY}&by=agent").get_data(as_text=True)
    # AHT per agent: its own talking per call taken plus its own wrap-up (60 + 10, 90 + 20).
    assert _cells(by_agent, "8001 话务员01")[2] == "1" and _cells(by_agent, "8001 话务员01")[9] == "70.0"
    assert _cells(by_agent, "8002")[9] == "110.0"
    # The centre's total stays the call's: 150 s of talk and the mean wrap-up of both seats.
    assert _cells(by_agent, "合计")[9] == "165.0"


def test_ticket_report_by_source_department_and_on_time_and_satisfaction(
    lead: FlaskClient, db: sessionmaker[Session], people: object
) -> None:
    _seed_tickets(db, people.agent_id, people.department_id)  # type: ignore[attr-defined]
    page = lead.get(f"/reports/tickets?period=month&date={DAY}&by=department").get_data(as_text=True)
    # 3 created: 2 by phone, 1 on the portal; 1 answered directly; 2 replies due, 1 on time; 1 of 1 satisfied.
    assert _cells(page, "合计") == [
        "合计", "3", "2", "0", "1", "0", "0", "1", "33.3%", "2", "50.0%", "1", "100.0%",
    ]  # fmt: skip
    assert _cells(page, "市住房和城乡建设局")[1] == "2" and _cells(page, "未派单")[1] == "1"
    by_district = lead.get(f"/reports/tickets?period=week&date={DAY}&by=district").get_data(as_text=True)
    assert _cells(by_district, "钟山区")[1] == "1"
    xlsx = lead.get(f"/reports/tickets?period=month&date={DAY}&by=agent&format=xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.get_data())).active
    assert sheet is not None
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    # Numbers stay numbers in Excel: counts as integers, rates as fractions shown in per cent.
    assert values[1][0] == "话务员" and values[2][:2] == ["话务员01", 2]
    assert values[-1][0] == "合计" and values[-1][-1] == 1.0 and values[-1][-3] == 0.5


def test_hot_topics_rank_terms_by_the_tickets_that_mention_them(
    lead: FlaskClient, db: sessionmaker[Session], people: object
) -> None:
    _seed_tickets(db, people.agent_id, people.department_id)  # type: ignore[attr-defined]
    with transaction(db) as session:  # the week before: one ticket about street lights
        last_week = utc("02:00:00") - dt.timedelta(days=7)
        session.add(Ticket(number="T0", channel=Channel.PHONE, content="路灯又坏了", created_at=last_week))
    page = lead.get(f"/reports/hot?date={DAY}").get_data(as_text=True)
    assert "起一周" in page  # this week by default
    assert _cells(page, "1") == ["1", "路灯", "2", "1", "+1"]
    assert "咨询" not in page.split("<tbody>")[1]  # filler words of hotline speech are left out


def test_reports_are_for_supervisors_and_administrators_only(app: Flask, login_as: Login) -> None:
    agent = app.test_client()
    login_as(agent, "agent1")
    for path in ("/reports/calls", "/reports/tickets", "/reports/hot", "/wallboard/api/charts"):
        assert agent.get(path).status_code == 403
        assert app.test_client().get(path).status_code in (302, 401)


def test_wallboard_charts_cover_today_in_quarter_hours(lead: FlaskClient, db: sessionmaker[Session]) -> None:
    now = dt.datetime.now(dt.UTC)
    shanghai = dt.timezone(dt.timedelta(hours=8))
    midnight = now.astimezone(shanghai).replace(hour=0, minute=0, second=0, microsecond=0)
    queued = max(now - dt.timedelta(seconds=10), midnight)  # today, whenever the test runs
    with transaction(db) as session:
        # Gave up after 10 s: an abandon, not a short one.
        session.add(Call(call_id="now-1", queued_at=queued, ended_at=queued + dt.timedelta(seconds=10)))
    data = lead.get("/wallboard/api/charts").get_json()
    assert data["labels"][0] == "00:00" and len(data["labels"]) == len(data["offered"])
    assert sum(data["abandoned"]) == 1 and sum(data["answered"]) == 0
    assert data["today"]["offered"] == 1 and data["service_level"][-1] in (0.0, None)
