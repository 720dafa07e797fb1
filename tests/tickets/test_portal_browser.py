"""In real Chromium on a phone-sized screen: a citizen submits, looks the ticket up and rates it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from tickets import antiabuse, dispatch
from tickets.models import Ticket, TicketStatus

pytestmark = pytest.mark.browser
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"IEND\xaeB`\x82"


def _fits_the_screen(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_a_citizen_on_a_phone_submits_follows_and_rates(
    browser: Browser,
    public_server: str,
    db: sessionmaker[Session],
    departments: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(antiabuse, "MIN_FILL_S", 0.5)  # a person takes longer; the test need not
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{public_server}/portal/")
    page.get_by_role("link", name="我要提交诉求").click()
    page.get_by_label("问题类别").select_option("010101")
    page.get_by_label("所在区县").select_option("钟山区")
    page.get_by_label("详细地址").fill("人民中路 12 号")
    page.get_by_label("诉求内容").fill("小区门口的路灯坏了一个星期，晚上出行很不方便。")
    photo = page.get_by_label("现场照片（选填）")
    photo.set_input_files({"name": "a.gif", "mimeType": "image/gif", "buffer": b"GIF89a"})
    expect(page.locator(".photo-error")).to_have_text(
        "照片仅支持 JPG、PNG 格式"
    )  # our script runs under the CSP
    photo.set_input_files({"name": "现场.png", "mimeType": "image/png", "buffer": PNG})
    expect(page.locator(".photo-error")).to_be_hidden()
    page.get_by_label("联系电话").fill("13800005678")
    assert _fits_the_screen(page)
    page.wait_for_timeout(600)
    page.get_by_role("button", name="提交").click()
    expect(page.get_by_role("heading", name="您的诉求已受理")).to_be_visible()
    number = page.locator(".number strong").inner_text()

    with transaction(db) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        dispatch.dispatch(session, ticket, departments["urban-management"])
        dispatch.sign(session, ticket, departments["urban-management"])
        dispatch.reply(session, ticket, departments["urban-management"], "已更换路灯，恢复照明。")

    fresh = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    lookup = fresh.new_page()
    lookup.goto(f"{public_server}/portal/lookup")
    lookup.get_by_label("工单号").fill(number)
    lookup.get_by_label("提交时的联系电话").fill("13800005678")
    lookup.get_by_role("button", name="查询").click()
    expect(lookup.locator("dd.status")).to_have_text("已答复")
    expect(lookup.locator("section.reply")).to_contain_text("已更换路灯，恢复照明。")
    assert _fits_the_screen(lookup)
    lookup.get_by_label("非常满意").check()
    lookup.get_by_role("button", name="提交评价").click()
    expect(lookup.get_by_role("alert")).to_have_text("感谢您的评价！")
    expect(lookup.locator("section.rated")).to_contain_text("非常满意")
    with db() as session:
        status = session.scalars(select(Ticket.status).where(Ticket.number == number)).one()
        assert status is TicketStatus.REPLIED  # satisfied: kept for the centre's review, then closed
    assert errors == []
    fresh.close()
    context.close()
