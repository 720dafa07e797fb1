"""In real Chromium: an agent works the seat buttons, the wallboard follows live, the screen pops,
and the call controls of the desk and the wallboard reach the softswitch and show its answer."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd import callbacks
from acd.controls import RESULT_EVENT, Command, channel, result_rooms
from acd.models import Call, Seat
from acd.seat_states import SeatEvent
from acd.store import AcdStore
from hotline import bus
from hotline.accounts import Role
from hotline.db import transaction
from tests.agent_desk.conftest import staff
from tests.helpers import wait_until

pytestmark = pytest.mark.browser
PASSWORD = "desk-pass-phrase"


def _login(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("button", name="退出", exact=True)).to_be_visible()


def _offer(app: Flask, db: sessionmaker[Session], call_id: str, worker: str = "sip-worker-1@browser") -> None:
    """A caller who pressed 0 waited 7 s; the ACD offers it to the ready seat 8001 (no SIP here)."""
    queued = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=7)
    with transaction(db) as session:
        call = Call(call_id=call_id, caller="13800000000", queued_at=queued, queue="general")
        call.ivr_path = [
            {"node": "entry", "via": "start"},
            {"node": "entry", "input": "0", "via": "dtmf", "action": "queue"},
            {"node": "entry", "queue": "general"},
        ]
        session.add(call)
    acd: AcdStore = app.extensions["hotline"]["acd"]
    acd.set_registered("8001", True)
    acd.enqueue(call_id, "general", caller="13800000000", worker=worker)
    assert [offer.extension for offer in acd.dispatch(worker=worker)] == ["8001"]


class _Worker:
    """The softswitch worker holding the calls (outside the desk): its command channel, and its answers."""

    def __init__(self, client: redis.Redis, events: bus.EventBus, name: str = "sip-worker-1@browser") -> None:
        self.name, self.events = name, events
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel(name))

    def command(self) -> Command:
        # None also for the subscription's own confirmation: read until a command comes.
        message = wait_until(lambda: self.pubsub.get_message(timeout=0.1), timeout=5)
        assert message is not None, "no command reached the worker"
        return Command.decode(message["data"])

    def answer(self, sent: Command, ok: bool, error: str = "") -> None:
        data = {"id": sent.id, "call_id": sent.call_id, "action": sent.action.value, "ok": ok, "error": error}
        self.events.publish(RESULT_EVENT, data, rooms=result_rooms(sent.by_user))

    def close(self) -> None:
        self.pubsub.close()


@pytest.fixture
def sip_worker(redis_client: redis.Redis, event_bus: bus.EventBus) -> Iterator[_Worker]:
    """The softswitch worker `sip-worker-1@browser`, listening for commands."""
    worker = _Worker(redis_client, event_bus)
    yield worker
    worker.close()


def _ready_at_desk(page: Page, base: str, username: str) -> None:
    """The agent logs in, opens the desk, signs in to its seat and goes ready."""
    _login(page, base, username)
    page.goto(f"{base}/desk/")
    expect(page.locator("#connection")).to_have_text("已连接")
    page.get_by_role("button", name="签入").click()
    page.get_by_role("button", name="示闲").click()
    expect(page.locator("#seat-state")).to_have_text("示闲")


def test_seat_buttons_wallboard_and_screen_pop(
    browser: Browser, app: Flask, db: sessionmaker[Session], live_server: str, people: Any
) -> None:
    agent = browser.new_context().new_page()
    lead = browser.new_context().new_page()
    errors: list[str] = []
    for page in (agent, lead):
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # JS errors count; a refused form (HTTP 400) logs "Failed to load resource" and is expected.
        page.on(
            "console", lambda m: errors.append(m.text) if m.type == "error" and "400" not in m.text else None
        )

    _login(agent, live_server, "agent1")
    agent.goto(f"{live_server}/desk/")
    expect(agent.locator("#connection")).to_have_text("已连接")
    expect(agent.locator("#seat-state")).to_have_text("未签入")
    agent.get_by_role("button", name="签入").click()
    expect(agent.locator("#seat-state")).to_have_text("示忙")
    agent.get_by_role("button", name="示闲").click()
    expect(agent.locator("#seat-state")).to_have_text("示闲")

    _login(lead, live_server, "lead")
    lead.goto(f"{live_server}/wallboard/")
    row = lead.locator("#seats tbody tr").filter(has_text="8001")
    expect(row).to_contain_text("示闲")
    # The agent goes to a meeting: the wallboard follows from the event, well before its 5 s redraw.
    agent.get_by_label("示忙原因").select_option("meeting")
    agent.get_by_role("button", name="示忙").click()
    expect(row).to_contain_text("示忙（会议）", timeout=3000)

    # A call is offered to this agent: the screen pops with the caller and its IVR path in words.
    agent.get_by_role("button", name="示闲").click()
    expect(agent.locator("#seat-state")).to_have_text("示闲")
    _offer(app, db, "c-1")
    expect(agent.locator("#pop-caller")).to_have_text("13800000000", timeout=3000)
    expect(agent.locator("#pop-path")).to_have_text("主菜单 → 按键 0（转人工） → 排队：综合")
    expect(agent.locator("#pop-wait")).to_have_text(re.compile(r"^[78] 秒$"))
    expect(agent.locator("#ticket-phone")).to_have_value("13800000000")
    expect(lead.locator("#pop-caller")).to_have_count(0)  # nobody else's screen pops

    # The ticket form: an error for a missing field, then a ticket number.
    agent.get_by_role("button", name="提交工单").click()
    expect(agent.locator('[data-error-for="content"]')).to_have_text("请填写诉求内容")
    agent.get_by_label("诉求内容").fill("咨询公积金提取")
    agent.get_by_role("radio", name="直接办结").check()
    agent.get_by_role("button", name="提交工单").click()
    expect(agent.locator("#ticket-result")).to_contain_text("已提交（直接办结）")
    assert errors == []


def test_wallboard_charts_draw_today_and_follow_a_new_call(
    browser: Browser, live_server: str, event_bus: bus.EventBus, db: Any, people: Any
) -> None:
    import datetime as dt

    from acd.models import Call
    from hotline.db import transaction

    lead = browser.new_context().new_page()
    errors: list[str] = []
    lead.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(lead, live_server, "lead")
    lead.goto(f"{live_server}/wallboard/")
    expect(lead.locator("#connection")).to_have_text("已连接")
    expect(lead.locator("#charts")).to_have_attribute("data-offered", "0")

    def chart(canvas: str, expression: str) -> Any:
        return lead.evaluate(f"() => {{ const c = Chart.getChart('{canvas}'); return {expression}; }}")

    # All three charts are drawn: the seat chart counts seat 8001 as not logged in.
    assert chart("chart-calls", "c.data.labels[0]") == "00:00"
    assert chart("chart-seats", "c.data.datasets[0].data[6]") == 1
    assert lead.locator("#chart-calls").bounding_box()["height"] > 100  # type: ignore[index]

    # A caller gives up after 20 s; the next seat event makes the charts read today's figures again.
    now = dt.datetime.now(dt.UTC)
    midnight = now.astimezone(dt.timezone(dt.timedelta(hours=8))).replace(hour=0, minute=0, second=0)
    queued = max(now - dt.timedelta(seconds=20), midnight)  # today in Shanghai, whenever this runs
    with transaction(db) as session:
        session.add(Call(call_id="gave-up", queued_at=queued, ended_at=queued + dt.timedelta(seconds=20)))
    change = {"extension": "8001", "state": "logged_out"}
    event_bus.publish("seat.changed", change, rooms=("role:supervisor",))
    expect(lead.locator("#charts")).to_have_attribute("data-offered", "1", timeout=5000)
    assert sum(chart("chart-calls", "c.data.datasets[2].data")) == 1

    # The calls report draws its chart from the same figures (bars: answered, abandoned).
    lead.goto(f"{live_server}/reports/calls?period=day")
    expect(lead.locator("#report tfoot")).to_contain_text("合计")
    assert sum(chart("report-chart", "c.data.datasets[1].data")) == 1
    assert errors == []


def test_call_controls_reach_the_softswitch_and_show_its_answer(
    browser: Browser,
    app: Flask,
    db: sessionmaker[Session],
    live_server: str,
    sip_worker: _Worker,
    acd: AcdStore,
    people: Any,
    artifacts: Path,
) -> None:
    worker, command, answer = sip_worker.name, sip_worker.command, sip_worker.answer

    with transaction(db) as session:
        session.add(
            Seat(extension="8009", name="班长席", sip_password="x", skills={}, agent_id=people.lead_id)
        )
    agent = browser.new_context().new_page()
    lead = browser.new_context().new_page()
    errors: list[str] = []
    for page in (agent, lead):
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _ready_at_desk(agent, live_server, "agent1")
    expect(agent.locator("#call-controls")).to_be_hidden()  # no call, no call buttons

    _offer(app, db, "c-9", worker)
    acd.seat_event("8001", SeatEvent.ANSWER, call_id="c-9")
    expect(agent.locator("#seat-state")).to_have_text("通话中", timeout=3000)
    hold, resume = agent.get_by_role("button", name="保持"), agent.get_by_role("button", name="恢复通话")
    expect(hold).to_be_enabled()
    expect(resume).to_be_disabled()
    expect(agent.get_by_role("button", name="120 急救")).to_be_enabled()

    # Hold: the worker gets the command for this seat's call, holds, and says so.
    hold.click()
    sent = command()
    assert (sent.call_id, sent.action.value, sent.seat, sent.by_user) == (
        "c-9",
        "hold",
        "8001",
        people.agent_id,
    )
    acd.seat_event("8001", SeatEvent.HOLD, call_id="c-9")
    answer(sent, ok=True)
    expect(agent.locator("#toasts")).to_contain_text("通话已保持", timeout=3000)
    expect(agent.locator("#seat-state")).to_have_text("保持")
    expect(resume).to_be_enabled()
    expect(hold).to_be_disabled()

    # Resume by its shortcut (Alt+U); the worker cannot: the toast says why, in Chinese.
    agent.keyboard.press("Alt+u")
    sent = command()
    assert sent.action.value == "resume"
    answer(sent, ok=False, error="no_call")
    expect(agent.locator(".toast.error")).to_have_text("恢复通话失败：通话已结束", timeout=3000)
    agent.screenshot(path=artifacts / "1-desk-call-controls-error.png", full_page=True)

    # The supervisor listens in from its own seat 8009.
    acd.seat_event("8001", SeatEvent.UNHOLD, call_id="c-9")
    _login(lead, live_server, "lead")
    lead.goto(f"{live_server}/wallboard/")
    row = lead.locator("#seats tbody tr").filter(has_text="8001")
    row.get_by_role("button", name="监听").click()
    sent = command()
    assert (sent.call_id, sent.action.value, sent.target, sent.by_user) == (
        "c-9",
        "listen",
        "8009",
        people.lead_id,
    )
    answer(sent, ok=True)
    expect(lead.locator("#toasts")).to_contain_text("正在监听", timeout=3000)
    expect(row).to_contain_text("监听中")
    expect(agent.locator("#toasts")).not_to_contain_text("正在监听")  # the supervisor's, not the agent's
    lead.screenshot(path=artifacts / "2-wallboard-listening.png", full_page=True)
    assert errors == []


def test_an_attended_transfer_from_the_desk_lands_the_call_on_the_colleagues_desk(
    browser: Browser,
    app: Flask,
    db: sessionmaker[Session],
    live_server: str,
    sip_worker: _Worker,
    acd: AcdStore,
    people: Any,
    artifacts: Path,
) -> None:
    answer = sip_worker.answer

    def command(action: str) -> Command:
        sent = sip_worker.command()
        assert (sent.call_id, sent.action.value, sent.seat) == ("c-7", action, "8001")
        return sent

    with transaction(db) as session:
        agent2 = staff("agent2", "话务员02", Role.AGENT)
        session.add(agent2)
        session.flush()
        session.add(Seat(extension="8002", name="8002座席", sip_password="x", skills={}, agent_id=agent2.id))
    agent = browser.new_context().new_page()
    colleague = browser.new_context().new_page()
    errors: list[str] = []
    for page, username in ((colleague, "agent2"), (agent, "agent1")):
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        _ready_at_desk(page, live_server, username)
    acd.set_registered("8002", True)
    _offer(app, db, "c-7", sip_worker.name)
    acd.seat_event("8001", SeatEvent.ANSWER, call_id="c-7")
    expect(agent.locator("#seat-state")).to_have_text("通话中", timeout=10_000)
    button = agent.get_by_role("button", name="咨询转接")
    complete, cancel = (
        agent.get_by_role("button", name="完成转接"),
        agent.get_by_role("button", name="取消咨询"),
    )
    hold, status = agent.get_by_role("button", name="保持"), agent.locator("#consult-status")
    expect(agent.locator("#consult")).to_be_hidden()
    agent.locator("#transfer-seat").select_option("8002")

    # The colleague went busy meanwhile: the softswitch says so.
    button.click()
    expect(agent.locator("#toasts")).to_contain_text("正在呼叫同事…", timeout=10_000)
    answer(command("consult"), ok=False, error="seat_busy")
    expect(agent.locator(".toast.error")).to_have_text("咨询转接失败：该座席当前不空闲", timeout=10_000)

    # The colleague's phone rings and nobody answers: the caller is back with the agent.
    button.click()
    sent = command("consult")
    acd.reserve("c-7", "8002")
    acd.seat_event("8001", SeatEvent.HOLD, call_id="c-7")
    expect(status).to_have_text("正在呼叫同事 8002 话务员02…（市民保持等待中）", timeout=10_000)
    expect(cancel).to_be_enabled()
    for other in (complete, hold, button, agent.get_by_role("button", name="转座席")):
        expect(other).to_be_disabled()
    expect(agent.get_by_role("button", name="挂断")).to_be_enabled()
    expect(colleague.locator("#pop-caller")).to_have_text("13800000000")  # ringing: the pop shows
    acd.seat_event("8002", SeatEvent.RONA, reason="rona", call_id="c-7")
    acd.seat_event("8001", SeatEvent.UNHOLD, call_id="c-7")
    answer(sent, ok=False, error="failed")
    expect(agent.locator("#toasts")).to_contain_text("同事未接听，已恢复与市民通话", timeout=10_000)
    expect(agent.locator("#consult")).to_be_hidden()
    expect(hold).to_be_enabled()

    # Consulted again, the agent cancels while it rings: the caller is back.
    colleague.get_by_role("button", name="示闲").click()
    expect(colleague.locator("#seat-state")).to_have_text("示闲")
    button.click()
    command("consult")  # withdrawn before it was answered: the softswitch says nothing of it
    acd.reserve("c-7", "8002")
    acd.seat_event("8001", SeatEvent.HOLD, call_id="c-7")
    expect(cancel).to_be_enabled(timeout=10_000)
    cancel.click()
    sent = command("cancel_consult")
    acd.seat_event("8002", SeatEvent.CANCEL, call_id="c-7")
    acd.seat_event("8001", SeatEvent.UNHOLD, call_id="c-7")
    answer(sent, ok=True)
    expect(agent.locator("#toasts")).to_contain_text("已取消咨询", timeout=10_000)
    expect(agent.locator("#consult")).to_be_hidden()

    # Then it answers, and hangs up before the transfer is completed.
    button.click()
    sent = command("consult")
    acd.reserve("c-7", "8002")
    acd.seat_event("8001", SeatEvent.HOLD, call_id="c-7")
    acd.seat_event("8002", SeatEvent.ANSWER, call_id="c-7")
    answer(sent, ok=True)
    expect(agent.locator("#toasts")).to_contain_text("同事已接听，可以交代情况", timeout=10_000)
    expect(complete).to_be_enabled()
    acd.seat_event("8002", SeatEvent.HANGUP, call_id="c-7", wrap_up_s=30)
    acd.seat_event("8001", SeatEvent.UNHOLD, call_id="c-7")
    expect(agent.locator("#toasts")).to_contain_text("同事已挂断，已恢复与市民通话", timeout=10_000)
    expect(agent.locator("#consult")).to_be_hidden()
    colleague.get_by_role("button", name="示闲").click()
    expect(colleague.locator("#seat-state")).to_have_text("示闲")

    # Once more: the colleague answers and the agent explains (a reload keeps the consultation).
    button.click()
    sent = command("consult")
    acd.reserve("c-7", "8002")
    acd.seat_event("8001", SeatEvent.HOLD, call_id="c-7")
    acd.seat_event("8002", SeatEvent.ANSWER, call_id="c-7")
    answer(sent, ok=True)
    expect(agent.locator("#toasts")).to_contain_text("同事已接听，可以交代情况", timeout=10_000)
    expect(complete).to_be_enabled()
    agent.reload()
    expect(agent.locator("#connection")).to_have_text("已连接")
    expect(status).to_have_text("正在与 8002 话务员02 通话，市民保持等待中；交代完毕请点“完成转接”")
    expect(complete).to_be_enabled()
    expect(colleague.locator("#consult-status")).to_contain_text("8001 话务员01 正在向您咨询转接")
    expect(colleague.get_by_role("button", name="挂断")).to_be_disabled()  # not its call yet
    expect(colleague.get_by_role("button", name="完成转接")).to_be_hidden()  # nor its transfer
    agent.screenshot(path=artifacts / "1-desk-consulting.png", full_page=True)
    colleague.screenshot(path=artifacts / "2-colleague-consulted.png", full_page=True)

    # Completed: the agent wraps up; the colleague's desk has the call, its pop and its controls.
    complete.click()
    sent = command("complete_transfer")
    acd.seat_event("8001", SeatEvent.HANGUP, call_id="c-7", wrap_up_s=30)
    acd.hand_over("c-7", "8002")
    answer(sent, ok=True)
    expect(agent.locator("#toasts")).to_contain_text("转接完成", timeout=10_000)
    expect(agent.locator("#seat-state")).to_have_text("话后处理")
    expect(agent.locator("#call-controls")).to_be_hidden()
    expect(colleague.locator("#consult")).to_be_hidden(timeout=5000)
    expect(colleague.get_by_role("button", name="保持")).to_be_enabled()
    expect(colleague.locator("#seat-state")).to_have_text("通话中")
    expect(colleague.locator("#pop-caller")).to_have_text("13800000000")
    expect(colleague.locator("#ticket-phone")).to_have_value("13800000000")
    colleague.screenshot(path=artifacts / "3-colleague-has-the-call.png", full_page=True)
    assert errors == []


def test_a_supervisor_cancels_a_callback_from_the_wallboard_and_agents_only_see_the_list(
    browser: Browser, db: sessionmaker[Session], live_server: str, people: Any
) -> None:
    with transaction(db) as session:
        callbacks.book(session, "13912345678", "m-1", callbacks.CallbackReason.ABANDONED_QUEUE)
    agent = browser.new_context().new_page()
    _login(agent, live_server, "agent1")
    agent.goto(f"{live_server}/desk/")
    expect(agent.locator("#callbacks tbody")).to_contain_text("139****5678")
    expect(agent.get_by_role("button", name="取消回拨")).to_have_count(0)

    lead = browser.new_context().new_page()
    errors: list[str] = []
    lead.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(lead, live_server, "lead")
    lead.goto(f"{live_server}/wallboard/")
    lead.once("dialog", lambda dialog: dialog.accept("号码为骚扰电话"))
    lead.get_by_role("button", name="取消回拨").click()
    expect(lead.locator("#toasts")).to_contain_text("已取消回拨 139****5678")
    expect(lead.locator("#callbacks tbody")).to_contain_text("暂无待回拨")
    assert errors == []
    with db() as session:
        task = session.scalars(select(callbacks.CallbackTask)).one()
        assert task.status is callbacks.CallbackStatus.CANCELLED
