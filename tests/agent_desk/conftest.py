"""Desk fixtures: an app with an agent (seat 8001) and a supervisor, and a live server for Chromium."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Seat
from acd.store import AcdStore
from hotline.accounts import Role, User, hash_password
from hotline.db import transaction
from hotline.settings import Settings
from hotline.web import close_app, create_app
from tests.helpers import login
from tickets.models import Department, DepartmentKind

PASSWORD = "desk-pass-phrase"
LogIn = Callable[[str], tuple[FlaskClient, str]]


@dataclass
class People:
    agent_id: int
    lead_id: int
    department_id: int


def staff(username: str, display_name: str, role: Role, **extra: Any) -> User:
    """A user who logs in with PASSWORD, past the first-login password change."""
    return User(
        username=username,
        display_name=display_name,
        role=role,
        password_hash=_hashed(),
        must_change_password=False,
        **extra,
    )


@functools.cache
def _hashed() -> str:
    return hash_password(PASSWORD)  # Argon2 is slow on purpose: once per run


@pytest.fixture
def people(db: sessionmaker[Session]) -> People:
    with transaction(db) as session:
        agent = staff("agent1", "话务员01", Role.AGENT)
        lead = staff("lead", "班长", Role.SUPERVISOR)
        dept = Department(code="housing", name="市住房和城乡建设局", kind=DepartmentKind.BUREAU)
        session.add_all([agent, lead, dept])
        session.flush()
        session.add(
            Seat(
                extension="8001", name="8001座席", sip_password="x", skills={"general": 1}, agent_id=agent.id
            )
        )
        return People(agent.id, lead.id, dept.id)


@pytest.fixture
def app(
    settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis, people: People
) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    close_app(app)


@pytest.fixture
def login_as() -> Callable[[FlaskClient, str], str]:
    """`login_as(client, "agent1")` logs the client in and returns its CSRF token."""
    return lambda client, username: login(client, username, PASSWORD)


@pytest.fixture
def log_in(app: Flask, login_as: Callable[[FlaskClient, str], str]) -> LogIn:
    """`client, token = log_in("agent1")`: a new test client logged in, and its CSRF token."""

    def new_client(username: str) -> tuple[FlaskClient, str]:
        client = app.test_client()
        return client, login_as(client, username)

    return new_client


@pytest.fixture
def acd(app: Flask) -> AcdStore:
    """The app's ACD store: the live seats and calls, in Redis."""
    store: AcdStore = app.extensions["hotline"]["acd"]
    return store
