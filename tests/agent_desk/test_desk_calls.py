"""The desk and the wallboard in Chromium with a real call (issue 6's acceptance).

The live server and the softswitch share one database and one Redis: two workers behind
Kamailio with the registrar, the agent's seat phone (a pjsua2 test phone, answering by itself)
registered to Kamailio, a citizen's test phone calling 12345 and pressing 0. What the agent,
the supervisor and the department see is asserted in their pages, and a screenshot of each step
is kept in the test's artefact folder.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from playwright.sync_api import Browser, expect
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Seat
from acd.seat_states import SeatEvent
from hotline.accounts import Role, User, hash_password
from hotline.db import transaction
from ivr import kamailio
from tests.agent_desk.real_calls import (  # noqa: F401  (people, errors, seat_phone: fixtures)
    CITIZEN,
    MARKS,
    PASSWORD,
    SEAT,
    People,
    errors,
    heard,
    new_page,
    pause,
    people,
    ready_at_desk,
    seat_phone,
    take_a_call,
)
from tests.helpers import log_in_page
from tests.ivr.centre import CALLER_HZ, SEAT_HZ, centre  # noqa: F401  (the two-seat centre)
from tests.ivr.conftest import softswitch, tone_prompt_dir  # noqa: F401  (what the centre runs on)
from tests.ivr.lab import tone, tone_share, write_wav
from tickets.models import Ticket

if TYPE_CHECKING:
    from tests.ivr.centre import Centre
    from tests.ivr.lab import Phone

pytestmark = MARKS

SUPERVISOR_SEAT = "8009"
SUPERVISOR_HZ = 3700.0  # what the supervisor says: above every tone prompt and both voices


def test_a_real_call_pops_on_the_desk_survives_a_reload_and_its_ticket_reaches_the_department(
    centre: Centre,  # noqa: F811
    seat_phone: Phone,  # noqa: F811  (the centre made the seat; it is this agent's)
    browser: Browser,
    live_server: str,
    people: People,  # noqa: F811
    db: sessionmaker[Session],
    artifacts: Path,
    errors: list[str],  # noqa: F811
) -> None:
    agent, lead, staff = (new_page(browser, errors) for _ in range(3))

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


def _supervisor_phone(centre: Centre, db: sessionmaker[Session], lead_id: int) -> Phone:  # noqa: F811
    """The supervisor's own seat (never signed in, so never offered calls) and its phone, registered."""
    password = centre.passwords[SUPERVISOR_SEAT] = secrets.token_urlsafe(12)
    with transaction(db) as session:
        session.add(
            Seat(extension=SUPERVISOR_SEAT, name="班长席", sip_password=password, skills={}, agent_id=lead_id)
        )
    lab = centre.softswitch
    credentials = kamailio.seat_credentials_path(lab.settings)
    assert lab.wait_for(lambda: SUPERVISOR_SEAT in credentials.read_text(), timeout=10)
    pause(centre, 1.0)  # written, then pushed to Kamailio in the same round of the registrar
    return centre.seat_phone(SUPERVISOR_SEAT)


def test_a_supervisor_listens_and_whispers_from_the_wallboard_then_the_agent_transfers_to_a_colleague(
    centre: Centre,  # noqa: F811
    seat_phone: Phone,  # noqa: F811
    browser: Browser,
    live_server: str,
    people: People,  # noqa: F811
    db: sessionmaker[Session],
    artifacts: Path,
    errors: list[str],  # noqa: F811
) -> None:
    supervisor = _supervisor_phone(centre, db, people.lead_id)
    agent, lead = new_page(browser, errors), new_page(browser, errors)
    caller, _call_id = take_a_call(centre, agent, live_server)

    # The supervisor clicks 监听 on the talking seat's row: the supervisor's own phone rings and
    # answers, and hears the caller, then the agent (one after the other, each clear).
    log_in_page(lead, live_server, "lead", PASSWORD)
    lead.goto(f"{live_server}/wallboard/")
    expect(lead.locator("#connection")).to_have_text("已连接")
    row = lead.locator("#seats tbody tr").filter(has_text=SEAT)
    expect(row).to_contain_text("通话中")
    expect(lead.locator("#supervise-hint")).to_be_hidden()  # the supervisor has a seat of its own
    row.get_by_role("button", name="监听").click()
    expect(lead.locator("#toasts")).to_contain_text("正在监听", timeout=10_000)
    expect(row).to_contain_text("监听中")
    assert supervisor.expect("incoming")
    caller.send(f"play {centre.voices / 'caller.wav'}")
    pause(centre, 2.3)
    seat_phone.send(f"play {centre.voices / 'seat.wav'}")
    pause(centre, 2.3)
    lead.screenshot(path=artifacts / "1-wallboard-listening.png", full_page=True)

    # 耳语: the supervisor speaks; the agent hears it, the caller does not.
    row.get_by_role("button", name="耳语").click()
    expect(lead.locator("#toasts")).to_contain_text("正在耳语", timeout=10_000)
    expect(row).to_contain_text("耳语中")
    whisper = write_wav(centre.voices / "supervisor.wav", tone(2.0, SUPERVISOR_HZ))
    supervisor.send(f"play {whisper}")
    pause(centre, 2.5)
    lead.screenshot(path=artifacts / "2-wallboard-whispering.png", full_page=True)
    row.get_by_role("button", name="停止").click()
    expect(lead.locator("#toasts")).to_contain_text("已停止监听", timeout=10_000)
    expect(row).not_to_contain_text("耳语中")
    assert supervisor.expect("disconnected")
    expect(agent.locator("#toasts")).not_to_contain_text("正在监听")  # the supervisor's toasts only

    # The agent picks colleague 8002 to take the call, but 8002 is signed in and not ready:
    # the softswitch refuses and the desk says why; the caller stays with this agent.
    centre.acd.upsert_seat("8002", {"general": 1})
    centre.acd.seat_event("8002", SeatEvent.LOGIN)
    agent.locator("#transfer-seat").select_option("8002")
    expect(agent.locator("#transfer-seat option:checked")).to_have_text("8002 8002座席")
    agent.get_by_role("button", name="转座席").click()
    expect(agent.locator(".toast.error")).to_have_text("转座席失败：该座席当前不空闲", timeout=10_000)
    expect(agent.locator("#seat-state")).to_have_text("通话中")
    agent.screenshot(path=artifacts / "3-desk-colleague-busy.png", full_page=True)

    # 8002 goes ready with its phone: the transfer goes through, the agent wraps up and the
    # colleague's phone rings; the wallboard shows 8002 on the call.
    colleague = centre.seat_phone("8002")
    centre.ready("8002")
    agent.get_by_role("button", name="转座席").click()
    expect(agent.locator("#toasts")).to_contain_text("已转给该座席，正在振铃", timeout=10_000)
    assert seat_phone.expect("disconnected")
    expect(agent.locator("#seat-state")).not_to_have_text("通话中")
    assert colleague.expect("incoming")
    expect(lead.locator("#seats tbody tr").filter(has_text="8002")).to_contain_text("通话中", timeout=10_000)
    agent.screenshot(path=artifacts / "4-desk-transferred.png", full_page=True)

    caller.send("hangup")
    caller_heard = heard(caller)
    seat_heard, supervisor_heard = heard(seat_phone), heard(supervisor)
    assert tone_share(supervisor_heard, CALLER_HZ) > 0.5 and tone_share(supervisor_heard, SEAT_HZ) > 0.5
    assert tone_share(seat_heard, SUPERVISOR_HZ) > 0.5
    assert tone_share(caller_heard, SUPERVISOR_HZ) < 0.2
    assert errors == []


def test_an_attended_transfer_from_the_desk_hands_the_caller_to_the_colleague_who_was_told_first(
    centre: Centre,  # noqa: F811
    seat_phone: Phone,  # noqa: F811
    browser: Browser,
    live_server: str,
    people: People,  # noqa: F811
    db: sessionmaker[Session],
    artifacts: Path,
    errors: list[str],  # noqa: F811
) -> None:
    colleague_phone = centre.seat_phone("8002")
    with transaction(db) as session:
        agent2 = User(
            username="agent2", display_name="话务员02", role=Role.AGENT, password_hash=hash_password(PASSWORD)
        )
        agent2.must_change_password = False
        session.add(agent2)
        session.flush()
        session.execute(update(Seat).where(Seat.extension == "8002").values(agent_id=agent2.id))
    agent, colleague = new_page(browser, errors), new_page(browser, errors)
    caller, _call_id = take_a_call(centre, agent, live_server)

    # The colleague signs in at 8002 and goes ready once the caller is with 8001.
    ready_at_desk(colleague, live_server, "agent2")

    # 咨询转接: the caller waits with music, 8002's phone rings and answers, the two agents talk.
    agent.locator("#transfer-seat").select_option("8002")
    agent.get_by_role("button", name="咨询转接").click()
    expect(agent.locator("#toasts")).to_contain_text("正在呼叫同事…")
    assert colleague_phone.expect("incoming")
    expect(agent.locator("#toasts")).to_contain_text("同事已接听，可以交代情况", timeout=15_000)
    expect(agent.locator("#seat-state")).to_have_text("保持")
    expect(agent.locator("#consult-status")).to_contain_text("正在与 8002 话务员02 通话")
    expect(colleague.locator("#consult-status")).to_contain_text("8001 话务员01 正在向您咨询转接")
    expect(colleague.locator("#pop-caller")).to_have_text(CITIZEN)
    seat_phone.send(f"play {centre.voices / 'seat.wav'}")  # "这位市民反映…", to the colleague only
    pause(centre, 2.3)
    agent.screenshot(path=artifacts / "1-desk-consulting.png", full_page=True)
    colleague.screenshot(path=artifacts / "2-colleague-consulted.png", full_page=True)

    # 完成转接: the agent wraps up; the call is the colleague's, on its desk and at the softswitch.
    agent.get_by_role("button", name="完成转接").click()
    expect(agent.locator("#toasts")).to_contain_text("转接完成", timeout=10_000)
    assert seat_phone.expect("disconnected")
    expect(agent.locator("#seat-state")).not_to_have_text("保持", timeout=10_000)
    expect(agent.locator("#call-controls")).to_be_hidden()
    expect(colleague.locator("#consult")).to_be_hidden(timeout=10_000)
    expect(colleague.locator("#seat-state")).to_have_text("通话中")
    expect(colleague.locator("#pop-caller")).to_have_text(CITIZEN)
    expect(colleague.locator("#pop-history")).to_contain_text(people.earlier)
    colleague.get_by_role("button", name="保持").click()
    expect(colleague.locator("#toasts")).to_contain_text("通话已保持", timeout=10_000)
    colleague.get_by_role("button", name="恢复通话").click()
    expect(colleague.locator("#toasts")).to_contain_text("已恢复通话", timeout=10_000)
    caller.send(f"play {centre.voices / 'caller.wav'}")  # the caller now talks to 8002
    pause(centre, 2.3)
    colleague.screenshot(path=artifacts / "3-colleague-has-the-call.png", full_page=True)

    caller.send("hangup")
    caller_heard = heard(caller)
    assert colleague_phone.expect("disconnected")
    colleague_heard = heard(colleague_phone)
    assert tone_share(colleague_heard, SEAT_HZ) > 0.5  # the agent explained
    assert tone_share(colleague_heard, CALLER_HZ) > 0.5  # then the caller
    assert tone_share(caller_heard, SEAT_HZ) < 0.2  # who did not hear the agents consult
    assert errors == []
