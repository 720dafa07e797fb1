"""Acceptance 1 of the ticket engine in real Chromium: one ticket through every portal to 归档.

An agent writes and dispatches it on the desk with the catalog's suggestion, the department signs
and replies with an attachment in its portal, the centre reviews the reply, and the citizen looks
it up on the public portal by number + phone, sees the outcome and rates it, which closes it.
A screenshot of each step is kept in the test artefacts folder (`build/test-artifacts/<test>/`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Seat
from hotline.db import transaction
from tests.helpers import log_in_page
from tests.tickets.conftest import PASSWORD
from tickets.models import Ticket, TicketEvent, TicketStatus

pytestmark = pytest.mark.browser
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"IEND\xaeB`\x82"
PHONE = "13800006789"


def test_a_ticket_goes_from_the_desk_through_the_department_and_the_centre_to_the_citizen(
    browser: Browser,
    live_server: str,
    public_server: str,
    db: sessionmaker[Session],
    staff: dict[str, int],
    artifacts: Path,
) -> None:
    with transaction(db) as session:
        session.add(Seat(extension="8001", name="8001座席", sip_password="x", skills={"general": 1}))
        session.flush()
        session.scalars(select(Seat)).one().agent_id = staff["agent1"]
    errors: list[str] = []

    def open_as(username: str | None) -> Page:
        page = browser.new_context(locale="zh-CN").new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))  # our scripts run under the CSP
        if username:
            log_in_page(page, live_server, username, PASSWORD)
        return page

    # 受理 + 派单 on the desk, with the dispatch catalog's suggestion.
    agent = open_as("agent1")
    agent.goto(f"{live_server}/desk/")
    agent.get_by_label("来电号码").fill(PHONE)
    agent.get_by_label("称呼").fill("李先生")
    agent.get_by_label("诉求内容").fill("人民路 8 号门前路灯不亮已经三天，晚上行人看不清路。")
    agent.get_by_label("诉求分类").select_option("010101")
    agent.get_by_label("所在区县").select_option("钟山区")
    agent.get_by_role("button", name=re.compile("派单建议：市综合行政执法局")).click()
    agent.get_by_role("button", name="提交工单").click()
    expect(agent.locator("#ticket-result")).to_contain_text("已提交（待签收）")
    number = re.search(r"工单 (\S+) 已提交", agent.locator("#ticket-result").inner_text())[1]  # type: ignore[index]
    agent.screenshot(path=artifacts / "1-desk-dispatched.png", full_page=True)

    # 签收 and 办结 with an attachment in the department portal.
    department = open_as("dept-urban-management")
    department.goto(f"{live_server}/dept/")
    department.get_by_role("link", name=number).click()
    department.get_by_role("button", name="签收").click()
    expect(department.get_by_role("alert")).to_have_text("已签收")
    department.get_by_label("办理结果").fill("已更换灯泡并检修线路，路灯恢复照明。")
    department.locator('input[type="file"][name="files"]').set_input_files(
        {"name": "现场照片.png", "mimeType": "image/png", "buffer": PNG}
    )
    department.get_by_role("button", name="提交办理结果").click()
    expect(department.get_by_role("alert")).to_have_text("已提交办理结果（附件 1 个）")
    department.screenshot(path=artifacts / "2-department-replied.png", full_page=True)

    # 审核 in the centre: the reply and its attachment are there to judge.
    lead = open_as("lead")
    lead.goto(f"{live_server}/centre/")
    lead.locator("#replies").get_by_role("link", name=number).click()
    expect(lead.locator(".reply")).to_have_text("已更换灯泡并检修线路，路灯恢复照明。")
    expect(lead.get_by_role("link", name="现场照片.png")).to_be_visible()
    lead.get_by_role("button", name="审核通过").click()
    expect(lead.get_by_role("alert")).to_have_text("审核通过，等待回访")
    expect(lead.locator("#ticket-status")).to_have_text("已审核")
    lead.screenshot(path=artifacts / "3-centre-reviewed.png", full_page=True)

    # 回访 on the public portal: number + phone, the outcome, a rating that closes the ticket.
    citizen = open_as(None)
    citizen.goto(f"{public_server}/portal/lookup")
    citizen.get_by_label("工单号").fill(number)
    citizen.get_by_label("提交时的联系电话").fill(PHONE)
    citizen.get_by_role("button", name="查询").click()
    expect(citizen.locator("section.reply")).to_contain_text("路灯恢复照明")
    citizen.get_by_label("满意", exact=True).check()
    citizen.get_by_role("button", name="提交评价").click()
    expect(citizen.get_by_role("alert")).to_have_text("感谢您的评价！")
    expect(citizen.locator("dd.status")).to_have_text("已办结")
    citizen.screenshot(path=artifacts / "4-citizen-rated.png", full_page=True)

    lead.reload()
    expect(lead.locator("#ticket-status")).to_have_text("已归档")
    lead.screenshot(path=artifacts / "5-centre-closed.png", full_page=True)
    with db() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        steps = session.scalars(
            select(TicketEvent.action).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        ).all()
    assert ticket.status is TicketStatus.CLOSED
    assert steps == ["accept", "dispatch", "sign", "reply", "approve_reply", "revisit", "close"]
    assert errors == []
