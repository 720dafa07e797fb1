"""Administration: users and seats are created and changed by administrators only, and audited."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Seat
from hotline.accounts import AuditEntry, Role, User
from tests.helpers import csrf_of, logged_in

Login = Callable[[FlaskClient, str], str]


def _admin(app: Flask, db: sessionmaker[Session]) -> tuple[FlaskClient, str]:
    return logged_in(app, db, "root", Role.ADMIN)


def _flash(client: FlaskClient) -> str:
    return client.get("/admin/").get_data(as_text=True)


def test_an_administrator_creates_a_department_user_who_must_change_the_password(
    app: Flask, db: sessionmaker[Session], people: object
) -> None:
    admin, token = _admin(app, db)
    missing = admin.post(
        "/admin/users",
        data={"username": "dept-x", "display_name": "承办人", "role": "department", "csrf_token": token},
        follow_redirects=True,
    )
    assert "承办单位用户必须选择所属单位" in missing.get_data(as_text=True)
    created = admin.post(
        "/admin/users",
        data={
            "username": "Dept-Housing2",
            "display_name": "住建承办人",
            "role": "department",
            "department_id": str(people.department_id),  # type: ignore[attr-defined]
            "csrf_token": token,
        },
        follow_redirects=True,
    )
    page = created.get_data(as_text=True)
    password = re.search(r"初始密码：(\S+?)（", page).group(1)  # type: ignore[union-attr]
    again = admin.post(
        "/admin/users",
        data={"username": "dept-housing2", "display_name": "重复", "role": "agent", "csrf_token": token},
        follow_redirects=True,
    )
    assert "已存在" in again.get_data(as_text=True)
    newcomer = app.test_client()
    first = newcomer.post(
        "/login", data={"username": "dept-housing2", "password": password, "csrf_token": csrf_of(newcomer)}
    )
    assert first.headers["Location"].endswith("/account/password")
    with db() as session:
        user = session.scalars(select(User).where(User.username == "dept-housing2")).one()
        assert user.department_id == people.department_id and password not in user.password_hash  # type: ignore[attr-defined]
        actions = list(session.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "user")))
    assert actions == ["user.create"]


def test_disabling_a_user_ends_their_session(app: Flask, db: sessionmaker[Session], login_as: Login) -> None:
    admin, token = _admin(app, db)
    agent = app.test_client()
    login_as(agent, "agent1")
    assert agent.get("/desk/").status_code == 200
    with db() as session:
        agent_id = session.scalars(select(User.id).where(User.username == "agent1")).one()
    admin.post(f"/admin/users/{agent_id}/active", data={"active": "0", "csrf_token": token})
    assert agent.get("/desk/").status_code == 302


def test_seats_are_created_and_reassigned_one_seat_per_agent(
    app: Flask, db: sessionmaker[Session], people: object
) -> None:
    admin, token = _admin(app, db)
    agent_id = people.agent_id  # type: ignore[attr-defined]
    bad = admin.post(
        "/admin/seats",
        data={"extension": "80a", "skills": ["general"], "csrf_token": token},
        follow_redirects=True,
    )
    assert "分机号需为 3–8 位数字" in bad.get_data(as_text=True)
    admin.post(
        "/admin/seats",
        data={
            "extension": "8009",
            "skills": ["general", "dialect"],
            "agent_id": str(agent_id),
            "csrf_token": token,
        },
    )
    with db() as session:
        seats = {s.extension: s for s in session.scalars(select(Seat))}
    assert seats["8009"].agent_id == agent_id and seats["8009"].skills == {"general": 1, "dialect": 1}
    assert seats["8001"].agent_id is None  # moved from the old seat


def test_only_administrators_open_the_admin_pages(app: Flask, login_as: Login) -> None:
    lead = app.test_client()
    token = login_as(lead, "lead")
    assert lead.get("/admin/").status_code == 403
    assert lead.post("/admin/users", data={"username": "x", "csrf_token": token}).status_code == 403
