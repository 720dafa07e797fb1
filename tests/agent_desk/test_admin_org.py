"""Administration of departments, queues and skills, and holidays: admins only, audited, CSRF-checked."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Seat
from acd.seat_states import SeatEvent
from hotline.accounts import AuditEntry, Role
from hotline.db import transaction
from tests.helpers import logged_in
from tickets.lifecycle import Action
from tickets.models import Channel, Department, RequestKind
from tickets.service import apply, create_ticket


@pytest.fixture
def admin(app: Flask, db: sessionmaker[Session], people: object) -> tuple[FlaskClient, str]:
    return logged_in(app, db, "root", Role.ADMIN)


def _actions(db: sessionmaker[Session], target_type: str) -> list[str]:
    with db() as session:
        query = select(AuditEntry.action).where(AuditEntry.target_type == target_type).order_by(AuditEntry.id)
        return list(session.scalars(query))


def test_departments_are_added_and_changed_and_a_bad_form_saves_nothing(
    admin: tuple[FlaskClient, str], db: sessionmaker[Session]
) -> None:
    client, token = admin
    form = {"code": "water", "name": "市水务集团", "kind": "enterprise", "csrf_token": token}
    bad = client.post("/admin/departments", data={**form, "hotline_number": "96xx"}, follow_redirects=True)
    assert "热线号码只能包含数字" in bad.get_data(as_text=True)
    with db() as session:
        assert session.scalar(select(Department).where(Department.code == "water")) is None
    client.post(
        "/admin/departments",
        data={**form, "contact": "调度室 王工 0858-1234567", "hotline_number": "96916", "active": "1"},
    )
    again = client.post("/admin/departments", data=form, follow_redirects=True)
    assert "已存在" in again.get_data(as_text=True)
    with db() as session:
        water = session.scalars(select(Department).where(Department.code == "water")).one()
    assert water.contact == "调度室 王工 0858-1234567" and water.hotline_number == "96916" and water.active
    # Unticking 启用 retires it; the page lists it as 停用.
    client.post("/admin/departments", data={**form, "id": str(water.id), "contact": water.contact})
    page = client.get("/admin/departments").get_data(as_text=True)
    assert "停用" in page and "调度室 王工" in page
    assert _actions(db, "department") == ["department.create", "department.update"]


def test_seat_skill_levels_reach_a_logged_in_seat_at_once(
    app: Flask, admin: tuple[FlaskClient, str], db: sessionmaker[Session]
) -> None:
    client, token = admin
    store = app.extensions["hotline"]["acd"]
    store.upsert_seat("8001", {"general": 1})
    store.seat_event("8001", SeatEvent.LOGIN)
    none = client.post("/admin/queues/8001", data={"csrf_token": token}, follow_redirects=True)
    assert "至少要服务一个队列" in none.get_data(as_text=True)
    bad = client.post(
        "/admin/queues/8001", data={"skill-general": "9", "csrf_token": token}, follow_redirects=True
    )
    assert "技能等级无效" in bad.get_data(as_text=True)
    client.post("/admin/queues/8001", data={"skill-general": "2", "skill-dialect": "1", "csrf_token": token})
    with db() as session:
        assert session.scalars(select(Seat.skills).where(Seat.extension == "8001")).one() == {
            "general": 2,
            "dialect": 1,
        }
    assert store.seat("8001").skills == {"general": 2, "dialect": 1}
    page = client.get("/admin/queues").get_data(as_text=True)
    assert "方言专席" in page and "排队 0" in page
    assert _actions(db, "seat") == ["seat.skills"]


def test_a_city_holiday_moves_the_deadline_of_tickets_dispatched_after_it(
    admin: tuple[FlaskClient, str], db: sessionmaker[Session], people: object
) -> None:
    client, token = admin
    # Friday 2026-11-20: a 1-working-day sign limit ends on Monday the 23rd, unless the city closes it.
    bad = client.post(
        "/admin/holidays", data={"day": "2026-11-23", "csrf_token": token}, follow_redirects=True
    )
    assert "请选择工作日或休息日" in bad.get_data(as_text=True)
    client.post(
        "/admin/holidays",
        data={"day": "2026-11-23", "workday": "0", "note": "市政府通知", "csrf_token": token},
    )
    page = client.get("/admin/holidays").get_data(as_text=True)
    assert "2026-11-23" in page and "市政府通知" in page
    friday = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)
    with transaction(db) as session:
        ticket = create_ticket(
            session, channel=Channel.PHONE, content="路灯不亮", request_kind=RequestKind.HELP
        )
        apply(session, ticket, Action.DISPATCH, department_id=people.department_id, now=friday)  # type: ignore[attr-defined]
        sign_day = ticket.sign_deadline_at.astimezone(dt.timezone(dt.timedelta(hours=8))).date()  # type: ignore[union-attr]
    assert sign_day == dt.date(2026, 11, 24)
    client.post("/admin/holidays", data={"day": "2026-11-23", "workday": "remove", "csrf_token": token})
    assert "暂无调整" in client.get("/admin/holidays").get_data(as_text=True)
    assert _actions(db, "calendar_day") == ["calendar.set", "calendar.remove"]


@pytest.mark.parametrize(
    "path", ["/admin/departments", "/admin/queues", "/admin/holidays", "/admin/prompts/"]
)
def test_only_administrators_and_only_with_the_csrf_token(
    app: Flask, db: sessionmaker[Session], people: object, path: str
) -> None:
    lead, token = logged_in(app, db, "lead2", Role.SUPERVISOR)
    assert lead.get(path).status_code == 403
    assert app.test_client().get(path).status_code == 302  # to the login page
    admin, _ = logged_in(app, db, "root", Role.ADMIN)
    assert admin.get(path).status_code == 200
    forged = admin.post("/admin/departments", data={"code": "x1", "name": "伪造", "kind": "bureau"})
    assert forged.status_code == 400
    with db() as session:
        assert session.scalar(select(Department).where(Department.name == "伪造")) is None


def test_the_holiday_page_lists_the_national_calendars_exceptions() -> None:
    from agent_desk.admin_org import _national_exceptions

    # National Day 2026: the weekdays off and the Saturday worked instead (调休).
    found = dict(_national_exceptions(dt.date(2026, 9, 28), 14))
    assert found[dt.date(2026, 10, 1)] is False and found[dt.date(2026, 10, 7)] is False
    assert found[dt.date(2026, 10, 10)] is True and dt.date(2026, 10, 3) not in found  # a plain weekend
