"""The desk and the wallboard in Chromium with a real call (issue 6's acceptance).

The live server and the softswitch share one database and one Redis: two workers behind
Kamailio with the registrar, the agent's seat phone (a pjsua2 test phone, answering by itself)
registered to Kamailio, a citizen's test phone calling 12345 and pressing 0. What the agent,
the supervisor and the department see is asserted in their pages, and a screenshot of each step
is kept in the test's artefact folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Seat
from hotline.accounts import Role, User, hash_password
from hotline.db import transaction
from hotline.settings import Settings
from ivr import kamailio
from tests.helpers import log_in_page
from tests.ivr.centre import centre  # noqa: F401  (the two-seat centre)
from tests.ivr.conftest import softswitch, tone_prompt_dir  # noqa: F401  (what the centre runs on)
from tickets.catalog import seed_catalog
from tickets.models import Channel, Department, DepartmentKind, Ticket
from tickets.service import create_ticket

if TYPE_CHECKING:
    from tests.ivr.centre import Centre

pytestmark = [
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
        return People(agent.id, department.id, earlier.number)


def _page(browser: Browser, errors: list[str]) -> Page:
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page


def test_a_real_call_pops_on_the_desk_survives_a_reload_and_its_ticket_reaches_the_department(
    centre: Centre,  # noqa: F811
    browser: Browser,
    live_server: str,
    people: People,
    db: sessionmaker[Session],
    artifacts: Path,
) -> None:
    with transaction(db) as session:  # the centre made the seat; it is this agent's
        session.execute(update(Seat).where(Seat.extension == SEAT).values(agent_id=people.agent_id))
    seat_phone = centre.seat_phone(SEAT)
    errors: list[str] = []
    agent, lead, staff = (_page(browser, errors) for _ in range(3))

    # The agent signs in to the seat; the phone on the desk is registered.
    log_in_page(agent, live_server, "agent1", PASSWORD)
    agent.goto(f"{live_server}/desk/")
    expect(agent.locator("#connection")).to_have_text("已连接")
    agent.get_by_role("button", name="签入").click()
    expect(agent.locator("#seat-state")).to_have_text("示忙")
    expect(agent.locator("#seat-phone")).to_have_text("话机已注册")
    agent.screenshot(path=artifacts / "1-desk-signed-in.png", full_page=True)

    # The supervisor's wallboard: the seat, no caller waiting, no service level yet today.
    log_in_page(lead, live_server, "lead", PASSWORD)
    lead.goto(f"{live_server}/wallboard/")
    seat_row = lead.locator("#seats tbody tr").filter(has_text=SEAT)
    expect(seat_row).to_contain_text("示忙")
    service_level = lead.locator('[data-figure="today.service_level"]')
    expect(service_level).to_have_text("—")

    # The citizen calls 12345 and presses 0 while the agent is still busy: the wallboard shows it waiting.
    caller, call_id = centre.caller(CITIZEN)
    waiting = lead.locator("#queues tbody tr").filter(has_text="综合")
    expect(waiting.locator("td").nth(1)).to_have_text("1", timeout=15_000)
    lead.screenshot(path=artifacts / "2-wallboard-waiting.png", full_page=True)

    # The agent goes ready: the seat phone rings and answers, and the screen pops with the caller
    # and the caller's earlier ticket.
    agent.get_by_role("button", name="示闲").click()
    expect(agent.locator("#seat-state")).to_have_text("通话中", timeout=15_000)
    assert seat_phone.expect("incoming").startswith("incoming")
    expect(agent.locator("#pop-caller")).to_have_text(CITIZEN)
    expect(agent.locator("#pop-path")).to_contain_text("按键 0（转人工）")
    expect(agent.locator("#pop-history")).to_contain_text(people.earlier)
    expect(agent.locator("#pop-history")).to_contain_text("油烟扰民")
    expect(agent.locator("#ticket-phone")).to_have_value(CITIZEN)
    agent.screenshot(path=artifacts / "3-desk-screen-pop.png", full_page=True)

    # The wallboard: the seat talking, nobody waiting, and today's service level has a figure now.
    expect(seat_row).to_contain_text("通话中")
    expect(waiting.locator("td").nth(1)).to_have_text("0", timeout=10_000)
    expect(service_level).not_to_have_text("—", timeout=10_000)
    lead.screenshot(path=artifacts / "4-wallboard-talking.png", full_page=True)

    # A reload mid-call restores the pop and the controls: on a call the seat buttons are off.
    agent.reload()
    expect(agent.locator("#connection")).to_have_text("已连接")
    expect(agent.locator("#seat-state")).to_have_text("通话中")
    expect(agent.locator("#pop-caller")).to_have_text(CITIZEN)
    expect(agent.locator("#pop-history")).to_contain_text(people.earlier)
    expect(agent.locator("#ticket-phone")).to_have_value(CITIZEN)
    for name in ("签入", "示闲", "示忙", "签出"):
        expect(agent.get_by_role("button", name=name)).to_be_disabled()
    agent.screenshot(path=artifacts / "5-desk-reloaded-mid-call.png", full_page=True)

    # The agent puts the citizen on hold from the desk: the worker holding the call does it, the
    # seat shows held and the toast says so; Alt+U brings the citizen back.
    agent.get_by_role("button", name="保持").click()
    expect(agent.locator("#toasts")).to_contain_text("通话已保持", timeout=10_000)
    expect(agent.locator("#seat-state")).to_have_text("保持")
    expect(seat_row).to_contain_text("保持")
    agent.screenshot(path=artifacts / "5a-desk-on-hold.png", full_page=True)
    agent.keyboard.press("Alt+u")
    expect(agent.locator("#toasts")).to_contain_text("已恢复通话", timeout=10_000)
    expect(agent.locator("#seat-state")).to_have_text("通话中")

    # The agent writes the ticket and dispatches it while the citizen is on the line.
    form = agent.locator("#ticket-form")
    form.get_by_label("标题").fill("夜间施工噪音")
    form.get_by_label("诉求内容").fill("市民反映小区旁工地夜间施工，噪音扰民，请求查处。")
    form.get_by_label("诉求分类").select_option(index=1)
    form.get_by_role("radio", name="派单").check()
    form.get_by_label("承办单位（派单）").select_option(label="市综合行政执法局")
    agent.screenshot(path=artifacts / "6-desk-ticket-written.png", full_page=True)
    form.get_by_role("button", name="提交工单").click()
    expect(agent.locator("#ticket-result")).to_contain_text("已提交（待签收）")
    agent.screenshot(path=artifacts / "7-desk-ticket-dispatched.png", full_page=True)
    with db() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.title == "夜间施工噪音")).one()
        number, linked_call = ticket.number, ticket.call_id
    assert linked_call == call_id  # the ticket is the call's

    caller.send("hangup")
    caller.expect("closed")
    expect(agent.locator("#seat-state")).not_to_have_text("通话中", timeout=10_000)

    # The department's staff see it in their portal.
    log_in_page(staff, live_server, "dept-staff", PASSWORD)
    staff.goto(f"{live_server}/dept/")
    expect(staff.locator("body")).to_contain_text(number)
    expect(staff.locator("body")).to_contain_text("夜间施工噪音")
    staff.screenshot(path=artifacts / "8-department-portal.png", full_page=True)
    assert errors == []
