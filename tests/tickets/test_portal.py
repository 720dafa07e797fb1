"""The public portal: submit without a login, get a number, look it up by number + phone, rate it."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from tests.helpers import csrf_of
from tickets import antiabuse, dispatch, portal
from tickets.lifecycle import Action
from tickets.models import Attachment, Channel, Ticket, TicketStatus
from tickets.models_outcomes import Notification, RevisitTask
from tickets.revisit import approve_reply
from tickets.service import apply

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"IEND\xaeB`\x82"
TEXT = "我家楼下的路灯已经坏了一个星期，晚上出行很不方便，请尽快修理。"


def _form(app: Flask, client: FlaskClient, *, age_s: float = 10.0, **fields: Any) -> dict[str, Any]:
    """What a person sends after filling the form in for `age_s` seconds."""
    data = {
        "csrf_token": csrf_of(client, "/portal/submit"),
        "stamp": antiabuse.issue(app.secret_key or "", time.time() - age_s),
        "category": "010101",
        "request_kind": "help",
        "district": "钟山区",
        "address": "人民中路 12 号",
        "content": TEXT,
        "phone": "138 0000 5678",
        "name": "王小明",
        "website": "",
    }
    data.update(fields)
    return data


def _tickets(db: sessionmaker[Session]) -> int:
    with db() as session:
        return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)


def test_a_citizen_submits_with_a_photo_and_gets_a_number_and_next_steps(
    app: Flask, db: sessionmaker[Session]
) -> None:
    client = app.test_client()
    page = client.get("/portal/submit")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "提交诉求" in html
    assert '<optgroup label="城乡建设 / 市政设施">' in html and ">钟山区<" in html
    assert "<script>" not in html and "style=" not in html  # strict CSP: nothing inline
    data = _form(app, client, confidential="y", photo=(io.BytesIO(PNG), "现场.png"))
    sent = client.post("/portal/submit", data=data, content_type="multipart/form-data")
    assert sent.status_code == 303 and sent.headers["Location"].endswith("/portal/submitted")
    done = client.get("/portal/submitted").get_data(as_text=True)
    number = re.search(r"工单号：<strong>(\d{8}-\d{4})</strong>", done)
    assert number is not None and "接下来" in done
    with db() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.number == number[1]))
        assert ticket is not None
        assert (ticket.channel, ticket.status, ticket.confidential) == (
            Channel.PORTAL,
            TicketStatus.ACCEPTED,
            True,
        )
        assert (ticket.caller_phone, ticket.caller_name, ticket.district) == (
            "13800005678",
            "王小明",
            "钟山区",
        )
        photo = session.scalar(select(Attachment).where(Attachment.ticket_id == ticket.id))
        assert photo is not None and photo.content_type == "image/png" and photo.filename == "现场.png"
        sms = session.scalar(select(Notification).where(Notification.ticket_id == ticket.id))
        assert sms is not None and sms.recipient == "13800005678" and number[1] in sms.body
    # The same form sent again (a double click, a reload) makes no second ticket.
    again = client.post("/portal/submit", data={**data, "photo": (io.BytesIO(PNG), "现场.png")})
    assert again.status_code == 303 and _tickets(db) == 1
    # The submitter can follow it at once.
    assert "已受理" in client.get(f"/portal/tickets/{number[1]}").get_data(as_text=True)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"age_s": 0.5}, "提交过快"),
        ({"age_s": 3700}, "超过 1 小时"),
        ({"website": "http://spam.example"}, "隐藏的栏目被填写"),
        ({"stamp": "123.abc.forged"}, "校验信息缺失或无效"),
        ({"photo": (io.BytesIO(b"GIF89a..."), "a.gif")}, "照片仅支持 JPG、PNG"),
        ({"photo": (io.BytesIO(b"\x89PNG\r\n\x1a\n broken"), "a.png")}, "与文件类型不符"),
        ({"phone": "12345"}, "请填写正确的手机号码"),
    ],
)
def test_a_refused_form_keeps_what_was_typed_and_says_why(
    app: Flask, db: sessionmaker[Session], change: dict[str, Any], reason: str
) -> None:
    client = app.test_client()
    age = change.pop("age_s", 10.0)
    response = client.post("/portal/submit", data=_form(app, client, age_s=age, **change))
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and reason in html
    assert TEXT in html and "人民中路 12 号" in html and 'value="010101" selected' in html
    assert _tickets(db) == 0


def test_an_oversized_photo_is_refused_before_it_is_read(
    app: Flask, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(portal, "MAX_REQUEST_BYTES", 64 * 1024)  # small enough to stay in memory
    client = app.test_client()
    big = PNG[:8] + b"\x00" * (100 * 1024)
    response = client.post("/portal/submit", data=_form(app, client, photo=(io.BytesIO(big), "big.png")))
    assert response.status_code == 413 and "照片超过 5 MB" in response.get_data(as_text=True)
    assert _tickets(db) == 0


def test_submissions_are_rate_limited_per_address(app: Flask, db: sessionmaker[Session]) -> None:
    client = app.test_client()
    for _ in range(5):
        assert client.post("/portal/submit", data=_form(app, client)).status_code == 303
    sixth = client.post("/portal/submit", data=_form(app, client))
    assert sixth.status_code == 429 and "操作过于频繁" in sixth.get_data(as_text=True)
    assert _tickets(db) == 5
    # Another address is not held back by this one.
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    assert other.post("/portal/submit", data=_form(app, other)).status_code == 303


def _lookup(client: FlaskClient, number: str, phone: str) -> Any:
    token = csrf_of(client, "/portal/lookup")
    return client.post("/portal/lookup", data={"csrf_token": token, "number": number, "phone": phone})


def test_the_citizen_sees_the_public_outcome_and_nothing_internal(
    app: Flask,
    db: sessionmaker[Session],
    departments: dict[str, int],
    staff: dict[str, int],
    make_ticket: Callable[..., str],
) -> None:
    number = make_ticket("housing")
    with transaction(db) as session:
        ticket = session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        apply(session, ticket, Action.NOTE, actor_id=staff["agent1"], note="内部备注：来电人情绪激动")
        dispatch.sign(session, ticket, departments["housing"], actor_id=staff["dept-housing"])
        apply(session, ticket, Action.URGE, note="内部催办：请周五前处理")
        dispatch.reply(
            session,
            ticket,
            departments["housing"],
            "已更换灯泡，路灯恢复正常。",
            actor_id=staff["dept-housing"],
        )
    client = app.test_client()
    for wrong_number, wrong_phone in ((number, "13800009999"), ("20200101-0001", "13800001234")):
        miss = _lookup(client, wrong_number, wrong_phone)
        assert miss.status_code == 404 and "未找到匹配的工单" in miss.get_data(as_text=True)
    assert client.get(f"/portal/tickets/{number}").status_code == 302  # not looked up: no page
    found = _lookup(client, number, "138-0000-1234")
    assert found.status_code == 303
    html = client.get(found.headers["Location"]).get_data(as_text=True)
    assert "已答复" in html and "已更换灯泡，路灯恢复正常。" in html and "市住房和城乡建设局" in html
    assert "138****1234" in html and "张*" in html and "13800001234" not in html
    assert "承办单位已签收" in html and "诉求已受理" in html
    for internal in ("内部备注", "内部催办", "agent1", "dept-housing", "催办", "签收时限"):
        assert internal not in html
    assert "您对办理结果是否满意" in html


def test_wrong_look_ups_are_rate_limited_per_address_and_per_number(
    app: Flask, make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("housing")
    client = app.test_client()
    for _ in range(10):
        assert _lookup(client, number, "13900000000").status_code == 404
    # Even the right pair waits now: guessing phones from one address gets nowhere.
    assert _lookup(client, number, "13800001234").status_code == 429
    # Spread over many addresses, guesses at one number are limited too.
    other = make_ticket("housing", caller_phone="13800002222")
    for i in range(10):
        guesser = app.test_client()
        guesser.environ_base["REMOTE_ADDR"] = f"10.1.0.{i}"
        assert _lookup(guesser, other, f"1390000{i:04d}").status_code == 404
    last = app.test_client()
    last.environ_base["REMOTE_ADDR"] = "10.2.0.1"
    assert _lookup(last, other, "13800002222").status_code == 429


def _rate(client: FlaskClient, number: str, level: str) -> Any:
    token = csrf_of(client, "/portal/lookup")  # the session's token, whether or not a form is shown
    return client.post(f"/portal/tickets/{number}/rate", data={"csrf_token": token, "level": level})


def _status(db: sessionmaker[Session], number: str) -> TicketStatus:
    with db() as session:
        return session.scalars(select(Ticket.status).where(Ticket.number == number)).one()


def test_an_unsatisfied_rating_sends_the_reply_back_and_a_satisfied_one_closes(
    app: Flask, db: sessionmaker[Session], departments: dict[str, int], make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("housing")

    def department_replies(text: str) -> None:
        with transaction(db) as session:
            ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
            if ticket.status is TicketStatus.DISPATCHED:
                dispatch.sign(session, ticket, departments["housing"])
            dispatch.reply(session, ticket, departments["housing"], text)

    department_replies("已报修。")
    client = app.test_client()
    assert _lookup(client, number, "13800001234").status_code == 303
    sent_back = _rate(client, number, "dissatisfied")
    assert sent_back.status_code == 303
    page = client.get(f"/portal/tickets/{number}").get_data(as_text=True)
    assert "已退回承办单位重新办理" in page and "您对办理结果是否满意" not in page
    assert _status(db, number) is TicketStatus.IN_PROGRESS  # 退回重办
    with db() as session:
        kinds = session.scalars(select(Notification.kind).where(Notification.audience == "department")).all()
        assert "ticket.rework" in kinds
    # A new reply can be rated again; once the centre approves it, a satisfied rating closes the ticket.
    department_replies("已更换灯泡，恢复照明。")
    with transaction(db) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        approve_reply(session, ticket)
    assert _rate(client, number, "very_satisfied").status_code == 303
    assert _status(db, number) is TicketStatus.CLOSED
    page = client.get(f"/portal/tickets/{number}").get_data(as_text=True)
    assert "非常满意" in page and "已办结" in page
    with db() as session:
        task = session.scalars(select(RevisitTask)).one()
        assert task.state.value == "done"
    # Rating the same outcome twice is refused with a reason.
    twice = _rate(client, number, "satisfied")
    assert "该办理结果已评价" in client.get(twice.headers["Location"]).get_data(as_text=True)


def test_an_expired_session_gives_the_form_back_filled_in(app: Flask, db: sessionmaker[Session]) -> None:
    client = app.test_client()
    data = _form(app, client)
    data["csrf_token"] = "expired-token"
    response = client.post("/portal/submit", data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "页面已过期" in html and TEXT in html
    # The page carries a fresh token: sent again (after the wait), it goes through.
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert token is not None
    assert client.post("/portal/submit", data={**data, "csrf_token": token[1]}).status_code == 303


def test_the_department_gets_the_photo_but_not_a_confidential_reporter(
    app: Flask,
    db: sessionmaker[Session],
    departments: dict[str, int],
    login: Callable[[str], FlaskClient],
) -> None:
    citizen = app.test_client()
    data = _form(app, citizen, category="010102", confidential="y", photo=(io.BytesIO(PNG), "井盖.png"))
    assert citizen.post("/portal/submit", data=data).status_code == 303
    with transaction(db) as session:
        ticket = session.scalars(select(Ticket)).one()
        dispatch.dispatch(session, ticket, departments["housing"])
        number = ticket.number
    page = login("dept-housing").get(f"/dept/tickets/{number}").get_data(as_text=True)
    assert "井盖.png" in page and "保密工单" in page
    assert "王小明" not in page and "13800005678" not in page and "138****5678" not in page


def test_a_look_up_leaves_the_session_alone_and_staff_sessions_keep_their_protection(
    app: Flask, login: Callable[[str], FlaskClient], make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("housing")
    client = app.test_client()
    assert _lookup(client, number, "13800001234").status_code == 303  # grants the ticket: new cookie
    again = _lookup(client, number, "13800001234")
    # Nothing changed: no session re-signed and re-sent, no remember-me cookie cleared.
    assert again.status_code == 303 and again.headers.getlist("Set-Cookie") == []
    assert client.get(again.headers["Location"]).status_code == 200
    # Without its CSRF token the same look-up is refused.
    bare = client.post("/portal/lookup", data={"number": number, "phone": "13800001234"})
    assert bare.status_code == 400
    # A logged-in session replayed from another browser is still dropped ("strong" protection).
    agent = login("agent1")
    assert agent.get("/account/password").status_code == 200
    agent.environ_base["HTTP_USER_AGENT"] = "another browser"
    assert agent.get("/account/password").status_code == 302


def test_the_web_answers_retry_once_when_the_database_dropped_its_connections(
    app: Flask, engine: Engine, make_ticket: Callable[..., str]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server to drop connections")
    number = make_ticket("housing")
    client = app.test_client()
    assert _lookup(client, number, "13800001234").status_code == 303  # the web's pool holds a connection
    with engine.connect() as connection:  # as a PostgreSQL restart would: every other backend ends
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    dropped = _lookup(client, number, "13800001234")
    assert dropped.status_code == 503 and dropped.headers["Retry-After"] == "1"
    assert "请重试" in dropped.get_json()["error"]
    assert _lookup(client, number, "13800001234").status_code == 303  # a new connection
