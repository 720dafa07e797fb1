"""The live transcript on the desk: only for the agent on the call (and supervisors), restored after a
reload, and the ticket's content pre-filled from what the caller said without overwriting the agent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Call, Seat
from acd.records import seat_key
from acd.seat_states import SeatEvent
from acd.store import AcdStore
from hotline import bus
from hotline.accounts import Role, User, hash_password
from hotline.db import transaction
from recordings import transcripts
from tests.agent_desk.conftest import PASSWORD
from tests.agent_desk.test_browser import _login
from tickets.models import Channel
from tickets.service import create_ticket

Login = Callable[[FlaskClient, str], str]
CALL = "c-transcript-1"


def _said(db: sessionmaker[Session], leg: str, seq: int, text: str, start_s: float) -> dict[str, Any]:
    segment = transcripts.Segment(CALL, leg, seq, text, start_s, start_s + 1.5)
    transcripts.save(db, segment)
    return segment.as_dict()


@pytest.fixture
def second_agent(db: sessionmaker[Session]) -> int:
    with transaction(db) as session:
        other = User(
            username="agent2",
            display_name="话务员02",
            role=Role.AGENT,
            password_hash=hash_password(PASSWORD),
            must_change_password=False,
        )
        session.add(other)
        session.flush()
        session.add(Seat(extension="8002", name="8002座席", sip_password="x", agent_id=other.id))
        return other.id


def _on_call(redis_client: redis.Redis, extension: str) -> None:
    """The seat as the softswitch leaves it once it has bridged the call (talking, on CALL)."""
    store = AcdStore(redis_client)
    store.upsert_seat(extension, {"general": 1})
    store.seat_event(extension, SeatEvent.LOGIN)
    redis_client.hset(seat_key(extension), mapping={"state": "talking", "call_id": CALL})


def test_only_the_agent_on_the_call_and_supervisors_read_its_transcript(
    app: Flask, login_as: Login, db: sessionmaker[Session], second_agent: int, redis_client: redis.Redis
) -> None:
    _said(db, "caller", 1, "도로에 구멍", 2.0)
    _said(db, "agent", 1, "네 알겠습니다", 4.0)
    _said(db, "caller", 2, "위험합니다", 6.0)
    url = f"/desk/api/transcript?call_id={CALL}"
    agent, other, lead = app.test_client(), app.test_client(), app.test_client()
    login_as(agent, "agent1")
    login_as(other, "agent2")
    login_as(lead, "lead")
    assert agent.get(url).status_code == 404  # not this agent's call (yet)
    _on_call(redis_client, "8001")
    body = agent.get(url).get_json()
    assert [(s["leg"], s["seq"]) for s in body["segments"]] == [("caller", 1), ("agent", 1), ("caller", 2)]
    assert body["caller_text"] == "도로에 구멍 위험합니다"
    assert other.get(url).status_code == 404
    assert lead.get(url).get_json()["segments"] == body["segments"]
    # After the call (the seat moved on), the agent who took it still reads it: the CDR says so.
    redis_client.hset(seat_key("8001"), mapping={"state": "ready", "call_id": ""})
    assert agent.get(url).status_code == 404
    with transaction(db) as session:
        seat_id = session.scalar(select(Seat.id).where(Seat.extension == "8001"))
        session.add(Call(call_id=CALL, seat_id=seat_id))
    assert agent.get(url).status_code == 200

    # The ticket written from the call shows what both sides said, with the speakers.
    with transaction(db) as session:
        number = create_ticket(session, channel=Channel.PHONE, content="道路坑洞", call_id=CALL).number
    page = lead.get(f"/centre/tickets/{number}").get_data(as_text=True)
    assert "通话转写" in page and "市民：</span>도로에 구멍" in page
    assert "话务员：</span>네 알겠습니다" in page


@pytest.mark.browser
def test_the_desk_shows_the_live_transcript_restores_it_and_prefills_the_form(
    browser: Browser,
    live_server: str,
    event_bus: bus.EventBus,
    people: Any,
    second_agent: int,
    db: sessionmaker[Session],
    redis_client: redis.Redis,
) -> None:
    agent, other = browser.new_context().new_page(), browser.new_context().new_page()
    errors: list[str] = []
    for page in (agent, other):
        page.on("pageerror", lambda exc: errors.append(str(exc)))
    first = _said(db, "caller", 1, "도로에 구멍이 있어요", 1.0)
    _on_call(redis_client, "8001")
    _login(agent, live_server, "agent1")
    agent.goto(f"{live_server}/desk/")
    _login(other, live_server, "agent2")
    other.goto(f"{live_server}/desk/")
    for page in (agent, other):
        expect(page.locator("#connection")).to_have_text("已连接")
    transcript, content = agent.locator("#pop-transcript"), agent.get_by_label("诉求内容")
    # What was said before the desk opened comes from SQL, with its speaker; the form is pre-filled.
    expect(transcript).to_contain_text("市民：도로에 구멍이 있어요")
    expect(content).to_have_value(first["text"])

    # Live: the softswitch's events reach the agent on the call (and supervisors), nobody else.
    rooms = ("role:supervisor", f"user:{people.agent_id}")
    event_bus.publish("transcript", _said(db, "agent", 1, "네 말씀하세요", 3.0), rooms=rooms)
    event_bus.publish("transcript", _said(db, "caller", 2, "위험합니다", 5.0), rooms=rooms)
    expect(transcript.locator("li")).to_have_count(3, timeout=3000)
    expect(transcript.locator("li").nth(1)).to_have_text("话务员：네 말씀하세요")
    expect(content).to_have_value("도로에 구멍이 있어요 위험합니다")
    expect(other.locator("#pop-transcript")).to_have_text("暂无")

    # A reload restores the transcript so far from SQL.
    agent.reload()
    expect(transcript.locator("li")).to_have_count(3, timeout=3000)
    # While the caller is still speaking, the words so far show greyed, and are not in the form.
    partial = {"call_id": CALL, "leg": "caller", "seq": 3, "text": "빨리"}
    event_bus.publish("transcript.partial", partial, rooms=rooms)
    expect(transcript.locator("li.pending")).to_have_text("市民：빨리", timeout=3000)
    # The agent edits the content: later words no longer change it.
    content.fill("市民反映道路有坑")
    event_bus.publish("transcript", _said(db, "caller", 3, "빨리 와 주세요", 7.0), rooms=rooms)
    expect(transcript.locator("li")).to_have_count(4, timeout=3000)
    expect(transcript.locator("li.pending")).to_have_count(0)
    expect(content).to_have_value("市民反映道路有坑")
    assert errors == []
