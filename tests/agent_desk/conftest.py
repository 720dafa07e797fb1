"""Desk fixtures: an app with an agent (seat 8001) and a supervisor, and a live server for Chromium."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Seat
from hotline.accounts import Role, User, hash_password
from hotline.db import transaction
from hotline.settings import Settings
from hotline.web import close_app, create_app
from tests.helpers import login
from tickets.models import Department, DepartmentKind

PASSWORD = "desk-pass-phrase"


@dataclass
class People:
    agent_id: int
    lead_id: int
    department_id: int


@pytest.fixture
def people(db: sessionmaker[Session]) -> People:
    with transaction(db) as session:
        hashed = hash_password(PASSWORD)
        agent = User(
            username="agent1",
            display_name="话务员01",
            role=Role.AGENT,
            password_hash=hashed,
            must_change_password=False,
        )
        lead = User(
            username="lead",
            display_name="班长",
            role=Role.SUPERVISOR,
            password_hash=hashed,
            must_change_password=False,
        )
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
