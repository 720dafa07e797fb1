"""Fixtures for the ticket engine: the seeded departments and catalog, the web app, staff accounts."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from hotline.accounts import Role, User, hash_password
from hotline.db import transaction
from hotline.seed import DEPARTMENTS
from hotline.settings import Settings
from hotline.web import close_app, create_app
from tests import helpers
from tickets import catalog, dispatch
from tickets.models import Channel, Department
from tickets.service import create_ticket

PASSWORD = "Kq7d-mT3x-9fRw"


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)  # Argon2 is slow on purpose: hash once for every account


@pytest.fixture
def departments(db: sessionmaker[Session]) -> dict[str, int]:
    """The demo departments of 六盘水市 and the demo catalog; department code -> id."""
    with transaction(db) as session:
        for spec in DEPARTMENTS:
            session.add(Department(code=spec.code, name=spec.name, kind=spec.kind))
        session.flush()
        catalog.seed_catalog(session)
        return {d.code: d.id for d in session.query(Department)}


@pytest.fixture
def staff(db: sessionmaker[Session], departments: dict[str, int]) -> dict[str, int]:
    """Logins: `dept-<code>` for a few departments, `agent1`, `lead` (supervisor), `root` (admin);
    username -> user id."""
    centre = [("agent1", Role.AGENT, None), ("lead", Role.SUPERVISOR, None), ("root", Role.ADMIN, None)]
    users = centre + [
        (f"dept-{code}", Role.DEPARTMENT, departments[code])
        for code in ("housing", "water-supply", "urban-management", "ecology")
    ]
    with transaction(db) as session:
        rows = [
            User(
                username=name,
                display_name=name,
                role=role,
                department_id=department_id,
                password_hash=_password_hash(),
                must_change_password=False,
            )
            for name, role, department_id in users
        ]
        session.add_all(rows)
        session.flush()
        return {user.username: user.id for user in rows}


@pytest.fixture
def app(
    settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis, staff: dict[str, int]
) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    close_app(app)


@pytest.fixture
def login(app: Flask) -> Callable[[str], FlaskClient]:
    """A test client logged in as `username`."""

    def log_in(username: str) -> FlaskClient:
        client = app.test_client()
        helpers.login(client, username, PASSWORD)
        with client.session_transaction() as cookie:
            assert "_user_id" in cookie, f"{username} could not log in"
        return client

    return log_in


@pytest.fixture
def make_ticket(db: sessionmaker[Session], departments: dict[str, int]) -> Callable[..., str]:
    """Create and dispatch a ticket; returns its number."""

    def make(
        lead: str = "housing",
        assists: Sequence[str] = (),
        *,
        now: dt.datetime | None = None,
        content: str = "小区门口路灯不亮已经一周",
        **fields: Any,
    ) -> str:
        fields.setdefault("caller_phone", "13800001234")
        fields.setdefault("caller_name", "张三")
        fields.setdefault("category_code", "010101")
        with transaction(db) as session:
            ticket = create_ticket(session, channel=Channel.PHONE, content=content, now=now, **fields)
            dispatch.dispatch(session, ticket, departments[lead], [departments[a] for a in assists], now=now)
            return ticket.number

    return make


def _drop_job_context() -> None:
    from tickets import jobs

    if jobs._context.cache_info().currsize:
        jobs._context()[1].kw["bind"].dispose()  # close its pool, or the connections leak
    jobs._context.cache_clear()


@pytest.fixture
def job_environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The environment an RQ worker of this test's hotline has, for jobs that load their settings."""
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("REDIS_URL", settings.effective_redis_url)
    _drop_job_context()
    yield settings
    _drop_job_context()
