"""Logging in: hashed passwords, lockout, rate limits, CSRF, forced password change, roles, audit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.accounts import AuditEntry, Role, User, hash_password, require_role
from hotline.db import transaction
from hotline.settings import Settings
from hotline.web import close_app, create_app
from tests.helpers import csrf_of

PASSWORD = "Kq7d-mT3x-9fRw"


@pytest.fixture
def app(settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis) -> Iterator[Flask]:
    app = create_app(settings)

    @app.get("/only-supervisors")
    @require_role(Role.SUPERVISOR, Role.ADMIN)
    def only_supervisors() -> str:
        return "班长页面"

    with transaction(db) as session:
        session.add_all(
            [
                User(
                    username="agent1",
                    display_name="话务员01",
                    role=Role.AGENT,
                    password_hash=hash_password(PASSWORD),
                    must_change_password=True,
                ),
                User(
                    username="lead",
                    display_name="班长",
                    role=Role.SUPERVISOR,
                    password_hash=hash_password(PASSWORD),
                    must_change_password=False,
                ),
            ]
        )
    yield app
    close_app(app)


def _login(client: FlaskClient, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf_of(client)}
    )


def _audit(db: sessionmaker[Session]) -> list[str]:
    with db() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_pages_need_a_login_and_the_login_page_is_chinese(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    page = client.get("/login")
    assert "工作人员登录" in page.get_data(as_text=True)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_a_first_login_must_change_the_password_first(app: Flask, db: sessionmaker[Session]) -> None:
    client = app.test_client()
    response = _login(client, "agent1")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/password")
    assert client.get("/").headers["Location"].endswith("/account/password")  # nothing else first
    token = csrf_of(client, "/account/password")
    short = client.post(
        "/account/password",
        data={"current": PASSWORD, "new": "short", "confirm": "short", "csrf_token": token},
    )
    assert "新密码至少 10 个字符" in short.get_data(as_text=True)
    new = "a-much-longer-passphrase"
    done = client.post(
        "/account/password", data={"current": PASSWORD, "new": new, "confirm": new, "csrf_token": token}
    )
    assert done.status_code == 302
    assert client.get("/").status_code == 200
    with db() as session:
        user = session.scalars(select(User).where(User.username == "agent1")).one()
        assert not user.must_change_password and new not in user.password_hash and user.check_password(new)
    assert _audit(db) == ["login", "password.change"]


def test_changing_the_password_ends_other_sessions(app: Flask) -> None:
    first, second = app.test_client(), app.test_client()
    _login(first, "lead")
    _login(second, "lead")
    assert second.get("/").status_code == 200
    token = csrf_of(first, "/account/password")
    new = "another-long-passphrase"
    first.post(
        "/account/password", data={"current": PASSWORD, "new": new, "confirm": new, "csrf_token": token}
    )
    assert first.get("/").status_code == 200
    assert second.get("/").status_code == 302  # logged out by the change


def test_wrong_passwords_lock_the_account_and_are_audited(app: Flask, db: sessionmaker[Session]) -> None:
    client = app.test_client()
    for _ in range(4):
        response = _login(client, "lead", "wrong-password")
        assert response.status_code == 401 and "用户名或密码错误" in response.get_data(as_text=True)
    assert "账号已锁定" in _login(client, "lead", "wrong-password").get_data(as_text=True)
    locked = _login(client, "lead")  # even the right password, while locked
    assert locked.status_code == 401 and "临时锁定" in locked.get_data(as_text=True)
    assert _audit(db) == ["login.failed"] * 4 + ["login.lockout", "login.locked"]
    with db() as session:
        user = session.scalars(select(User).where(User.username == "lead")).one()
        assert user.locked_until is not None


def test_unknown_users_get_the_same_answer(app: Flask) -> None:
    response = _login(app.test_client(), "nobody", "whatever-password")
    assert response.status_code == 401 and "用户名或密码错误" in response.get_data(as_text=True)


def test_login_attempts_are_rate_limited_per_address(app: Flask) -> None:
    client = app.test_client()
    codes = [_login(client, "nobody", "x").status_code for _ in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429


def test_forms_without_the_csrf_token_are_refused(app: Flask) -> None:
    client = app.test_client()
    response = client.post("/login", data={"username": "lead", "password": PASSWORD})
    assert response.status_code == 400
    _login(client, "lead")
    assert client.post("/logout").status_code == 400  # logging out needs the token too


def test_roles_decide_who_opens_a_page(app: Flask) -> None:
    lead, agent = app.test_client(), app.test_client()
    _login(lead, "lead")
    assert lead.get("/only-supervisors").get_data(as_text=True) == "班长页面"
    _login(agent, "agent1")
    token = csrf_of(agent, "/account/password")
    new = "agents-new-passphrase"
    agent.post(
        "/account/password", data={"current": PASSWORD, "new": new, "confirm": new, "csrf_token": token}
    )
    assert agent.get("/only-supervisors").status_code == 403
    assert app.test_client().get("/only-supervisors").status_code == 302


def test_an_open_redirect_after_login_is_refused(app: Flask) -> None:
    client = app.test_client()
    token = csrf_of(client)
    response = client.post(
        "/login?next=https://evil.example/",
        data={"username": "lead", "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/wallboard/"  # the supervisor's home, not the other site


def test_socketio_needs_a_login_and_the_csrf_token(app: Flask) -> None:
    socketio = app.extensions["hotline"]["socketio"]
    anonymous = socketio.test_client(app)
    assert not anonymous.is_connected()
    client = app.test_client()
    _login(client, "lead")
    without_token = socketio.test_client(app, flask_test_client=client)
    assert not without_token.is_connected()
    token = csrf_of(client, "/account/password")
    with_token = socketio.test_client(app, flask_test_client=client, auth={"csrf": token})
    assert with_token.is_connected()
    with_token.disconnect()
