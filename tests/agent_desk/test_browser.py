"""In real Chromium: an agent works the seat buttons, the wallboard follows live, the screen pops."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from hotline import bus

pytestmark = pytest.mark.browser
PASSWORD = "desk-pass-phrase"


def _login(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("button", name="退出")).to_be_visible()


def test_seat_buttons_wallboard_and_screen_pop(
    browser: Browser, live_server: str, event_bus: bus.EventBus, people: Any
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

    # A call is offered to this agent: the screen pops with the caller and its IVR path.
    event_bus.publish(
        "call.offered",
        {
            "caller": "13800000000",
            "call_id": "c-1",
            "wait_s": 7,
            "ivr_path": [{"node": "entry", "input": "0"}],
        },
        rooms=(f"user:{people.agent_id}",),
    )
    expect(agent.locator("#pop-caller")).to_have_text("13800000000", timeout=3000)
    expect(agent.locator("#pop-wait")).to_have_text("7 秒")
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
