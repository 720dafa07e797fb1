"""What the desk tests with real calls share: the people, a browser page, an agent taking a call.

The call runs on the SIP test centre (`tests.ivr.centre`: two workers behind Kamailio with the
registrar, seat phones that answer by themselves); the web is whatever the test serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Seat
from hotline.accounts import Role, User, hash_password
from hotline.db import transaction
from hotline.settings import Settings
from ivr import kamailio
from tests.helpers import log_in_page
from tickets.catalog import seed_catalog
from tickets.models import Channel, Department, DepartmentKind
from tickets.service import create_ticket

if TYPE_CHECKING:
    from tests.ivr.centre import Centre
    from tests.ivr.lab import Phone

# Every test with real calls: Chromium, SIP peers, and Kamailio in front of the workers.
MARKS = [
    pytest.mark.browser,
    pytest.mark.sip,
    pytest.mark.skipif(kamailio.find_binary(Settings()) is None, reason="kamailio is not installed"),
]
PASSWORD = "desk-pass-phrase"
CITIZEN = "13900139001"
SEAT = "8001"


@dataclass
class People:
    agent_id: int
    lead_id: int
    department_id: int
    earlier: str  # the number of the citizen's earlier ticket


@pytest.fixture
def people(db: sessionmaker[Session]) -> People:
    """Overrides the desk's `people`: the same users, but the seat is the centre's (with its phone)."""
    with transaction(db) as session:
        hashed = hash_password(PASSWORD)
        department = Department(code="urban-management", name="市综合行政执法局", kind=DepartmentKind.BUREAU)
        session.add(department)
        session.flush()
        agent, lead, staff = (
            User(username=name, display_name=shown, role=role, password_hash=hashed)
            for name, shown, role in (
                ("agent1", "话务员01", Role.AGENT),
                ("lead", "班长", Role.SUPERVISOR),
                ("dept-staff", "执法局承办人", Role.DEPARTMENT),
            )
        )
        for user in (agent, lead, staff):
            user.must_change_password = False
        staff.department_id = department.id
        session.add_all([agent, lead, staff])
        session.flush()
        seed_catalog(session)
        earlier = create_ticket(
            session, channel=Channel.PHONE, content="楼下烧烤油烟扰民", title="油烟扰民", caller_phone=CITIZEN
        )
        return People(agent.id, lead.id, department.id, earlier.number)


def new_page(browser: Browser, errors: list[str]) -> Page:
    """A page of its own (own cookies), whose script errors land in `errors`."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page


def agent_seat(centre: Centre, db: sessionmaker[Session], people: People) -> Phone:
    """The centre's seat SEAT, given to agent1, and its phone registered."""
    with transaction(db) as session:
        session.execute(update(Seat).where(Seat.extension == SEAT).values(agent_id=people.agent_id))
    return centre.seat_phone(SEAT)


@pytest.fixture
def errors() -> list[str]:
    """Where the test's pages (`new_page`) put their script errors; each test asserts it empty."""
    return []


@pytest.fixture
def seat_phone(centre: Centre, db: sessionmaker[Session], people: People) -> Phone:
    """agent1's seat SEAT with its phone registered (`agent_seat`)."""
    return agent_seat(centre, db, people)


def ready_at_desk(page: Page, base: str, username: str) -> None:
    """The agent logs in, opens the desk, signs in to its seat and goes ready."""
    log_in_page(page, base, username, PASSWORD)
    page.goto(f"{base}/desk/")
    expect(page.locator("#connection")).to_have_text("已连接")
    page.get_by_role("button", name="签入").click()
    page.get_by_role("button", name="示闲").click()
    expect(page.locator("#seat-state")).to_have_text("示闲")


def take_a_call(centre: Centre, page: Page, base: str) -> tuple[Phone, str]:
    """agent1 signs in at the desk and goes ready; the citizen calls and is put through.

    (the citizen's phone, the call id); the desk shows the seat talking.
    """
    ready_at_desk(page, base, "agent1")
    caller, call_id = centre.caller(CITIZEN)
    expect(page.locator("#seat-state")).to_have_text("通话中", timeout=15_000)
    assert centre.seat_phones[SEAT].expect("incoming")
    return caller, call_id


def heard(phone: Phone) -> Path:
    """What a test phone recorded, once its call is over and the file is whole (`Phone.heard`)."""
    return phone.heard()


def pause(centre: Centre, seconds: float) -> None:
    centre.softswitch.wait_for(lambda: False, timeout=seconds)
