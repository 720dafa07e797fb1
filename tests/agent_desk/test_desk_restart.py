"""Killing the web process mid-call and starting it again loses nothing (issue 6, acceptance 5).

The web runs as in production, `hotline web` (gunicorn, one process with threads, in its own
process group), on the softswitch's settings: the same database, Redis and var/ (so the same
session key). With a real call bridged to the agent's seat and the desk open in Chromium, the
whole web is killed with SIGKILL and started again; the call, the desk and the tickets are
checked as the agent sees them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.seat_states import SeatState
from tests.agent_desk.real_calls import (  # noqa: F401  (people, errors, seat_phone: fixtures)
    CITIZEN,
    MARKS,
    SEAT,
    People,
    errors,
    heard,
    new_page,
    pause,
    people,
    seat_phone,
    take_a_call,
)
from tests.helpers import wait_until
from tests.ivr.centre import CALLER_HZ, centre  # noqa: F401  (the two-seat centre)
from tests.ivr.conftest import softswitch, tone_prompt_dir  # noqa: F401  (what the centre runs on)
from tests.ivr.lab import tone_share
from tickets.models import Ticket

if TYPE_CHECKING:
    from tests.ivr.centre import Centre
    from tests.ivr.lab import Phone

pytestmark = MARKS


class Web:
    """`hotline web` as a child process that can be killed outright and started again."""

    def __init__(self, env: dict[str, str], root: Path, port: int) -> None:
        self.env = {**env, "HOTLINE_WEB_PORT": str(port), "HOTLINE_WEB_THREADS": "20"}
        self.root = root
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with (self.root / f"web-{self.starts}.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hotline", "web"],
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # gunicorn's arbiter and worker: one group to signal
            )
        assert wait_until(self._answers, timeout=30), f"hotline web did not come up:\n{self.output()}"

    def _answers(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.output()
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # it answers, degraded or not
        except OSError:
            return False

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the whole web (arbiter and worker) and wait until it is gone."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def output(self) -> str:
        return (self.root / f"web-{self.starts}.log").read_text(errors="replace")[-3000:]


@pytest.fixture
def web(centre: Centre, ports: Callable[[int], int], tmp_path: Path) -> Iterator[Web]:  # noqa: F811
    """The web on the centre's settings (its database, Redis, var/ and timers), not started yet."""
    server = Web(centre.softswitch.env, tmp_path, ports(1))
    try:
        yield server
    finally:
        server.kill(signal.SIGTERM)


def _write_ticket(page: Page, title: str, content: str) -> None:
    """The agent writes a ticket answered on the phone (直接办结) and submits it."""
    form = page.locator("#ticket-form")
    form.get_by_label("标题").fill(title)
    form.get_by_label("诉求内容").fill(content)
    form.get_by_role("radio", name="直接办结").check()
    form.get_by_label("答复内容（直接办结）").fill("已告知市民办理流程。")
    form.get_by_role("button", name="提交工单").click()


def _submitted(page: Page, before: str = "") -> str:
    """The number of the ticket the desk says it submitted (after the result `before`)."""
    result = page.locator("#ticket-result")
    expect(result).not_to_have_text(before)
    expect(result).to_contain_text("已提交")
    return result.inner_text().split()[1]  # "工单 <number> 已提交（直接办结）"


def test_killing_the_web_mid_call_and_starting_it_again_loses_nothing(
    centre: Centre,  # noqa: F811
    web: Web,
    seat_phone: Phone,  # noqa: F811
    browser: Browser,
    people: People,  # noqa: F811
    db: sessionmaker[Session],
    artifacts: Path,
    errors: list[str],  # noqa: F811
) -> None:
    web.start()
    agent = new_page(browser, errors)
    caller, call_id = take_a_call(centre, agent, web.url)
    expect(agent.locator("#pop-caller")).to_have_text(CITIZEN)

    # Before the kill: the citizen's first request is answered and its ticket submitted.
    _write_ticket(agent, "社保卡补办咨询", "市民咨询社保卡丢失后如何补办。")
    first = _submitted(agent)
    agent.screenshot(path=artifacts / "1-desk-first-ticket.png", full_page=True)

    # The web dies outright. The desk says it lost the server; the call is not the web's: the
    # seat is still talking, and the citizen is still heard at the seat.
    web.kill()
    expect(agent.locator("#connection")).to_have_text("连接中断，正在重连…")
    caller.send(f"play {centre.voices / 'caller.wav'}")
    pause(centre, 2.3)
    assert centre.acd.seat(SEAT).state is SeatState.TALKING
    assert not [line for line in caller.log if line.startswith("disconnected")]
    # The citizen's second request, written meanwhile: the desk says it cannot be sent, and keeps it.
    expect(agent.locator("#ticket-phone")).to_have_value(CITIZEN)  # still the same caller
    _write_ticket(agent, "医保转移咨询", "市民咨询医保关系跨省转移接续。")
    result = agent.locator("#ticket-result")
    expect(result).to_have_text("无法连接服务器，请稍后重试（已填写的内容仍保留）")
    expect(agent.locator("#ticket-form").get_by_label("诉求内容")).to_have_value(
        "市民咨询医保关系跨省转移接续。"
    )
    agent.screenshot(path=artifacts / "2-desk-web-down.png", full_page=True)

    # Started again: the desk reconnects by itself (no reload) and shows the call and its controls.
    web.start()
    expect(agent.locator("#connection")).to_have_text("已连接", timeout=20_000)
    expect(agent.locator("#seat-state")).to_have_text("通话中")
    expect(agent.locator("#pop-caller")).to_have_text(CITIZEN)
    expect(agent.locator("#call-controls")).to_be_visible()
    agent.screenshot(path=artifacts / "3-desk-reconnected.png", full_page=True)
    # The controls work through the new web: hold, and Alt+U to resume (the toasts come from the
    # softswitch over the new server's socket).
    agent.get_by_role("button", name="保持").click()
    expect(agent.locator("#toasts")).to_contain_text("通话已保持", timeout=10_000)
    expect(agent.locator("#seat-state")).to_have_text("保持")
    agent.keyboard.press("Alt+u")
    expect(agent.locator("#toasts")).to_contain_text("已恢复通话", timeout=10_000)
    expect(agent.locator("#seat-state")).to_have_text("通话中")

    # The second ticket, submitted again after the restart, is saved.
    agent.locator("#ticket-form").get_by_role("button", name="提交工单").click()
    second = _submitted(agent, result.inner_text())
    assert second != first

    # A reload shows both in the caller's history, beside the earlier ticket: nothing was lost.
    agent.reload()
    expect(agent.locator("#connection")).to_have_text("已连接")
    history = agent.locator("#pop-history")
    for number in (first, second, people.earlier):
        expect(history).to_contain_text(number)
    agent.screenshot(path=artifacts / "4-desk-after-restart.png", full_page=True)

    caller.send("hangup")
    assert seat_phone.expect("disconnected")
    assert tone_share(heard(seat_phone), CALLER_HZ) > 0.5  # heard while the web was down
    with db() as session:
        linked = select(Ticket.number, Ticket.call_id).where(Ticket.call_id.is_not(None))
        saved = {number: call for number, call in session.execute(linked)}
    assert saved == {first: call_id, second: call_id}
    assert errors == []
