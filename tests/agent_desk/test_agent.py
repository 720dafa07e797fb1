"""The agent desk's endpoints: seat state from the desk, the history pop, writing tickets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import SeatEvent
from hotline.accounts import Role, User
from hotline.db import transaction
from tickets import knowledge
from tickets.catalog import seed_catalog
from tickets.knowledge import Article, ArticleAction
from tickets.models import Channel, Department, DepartmentKind, Ticket, TicketStatus
from tickets.service import create_ticket

Login = Callable[[FlaskClient, str], str]


def _post(client: FlaskClient, url: str, token: str, body: dict[str, Any]):  # type: ignore[no-untyped-def]
    return client.post(url, json=body, headers={"X-CSRFToken": token})


def test_the_agent_moves_the_seat_and_the_history_is_kept(
    app: Flask, login_as: Login, db: sessionmaker[Session]
) -> None:
    client = app.test_client()
    token = login_as(client, "agent1")
    assert "座席工作台" in client.get("/desk/").get_data(as_text=True)
    assert client.get("/desk/api/state").get_json()["label"] == "未签入"
    assert _post(client, "/desk/api/seat", token, {"event": "login"}).get_json()["label"] == "示忙"
    assert _post(client, "/desk/api/seat", token, {"event": "ready"}).get_json()["label"] == "示闲"
    missing = _post(client, "/desk/api/seat", token, {"event": "not_ready"})
    assert missing.status_code == 400 and missing.get_json()["error"] == "请选择示忙原因"
    busy = _post(client, "/desk/api/seat", token, {"event": "not_ready", "reason": "meeting"}).get_json()
    assert (busy["label"], busy["reason"]) == ("示忙", "会议")
    refused = _post(client, "/desk/api/seat", token, {"event": "login"})
    assert refused.status_code == 409 and "示忙" in refused.get_json()["error"]
    with db() as session:
        history = session.execute(select(SeatEvent.from_state, SeatEvent.to_state, SeatEvent.reason)).all()
    assert [tuple(h) for h in history] == [
        ("logged_out", "not_ready", ""),
        ("not_ready", "ready", ""),
        ("ready", "not_ready", "meeting"),
    ]


def test_the_desk_needs_the_csrf_token_and_the_right_role(app: Flask, login_as: Login) -> None:
    agent = app.test_client()
    login_as(agent, "agent1")
    assert agent.post("/desk/api/seat", json={"event": "login"}).status_code == 400  # no CSRF token
    assert agent.get("/wallboard/").status_code == 403
    assert app.test_client().get("/desk/api/state").status_code == 302  # not logged in


def test_the_wallboard_shows_every_seat_with_its_state(app: Flask, login_as: Login) -> None:
    agent, lead = app.test_client(), app.test_client()
    token = login_as(agent, "agent1")
    _post(agent, "/desk/api/seat", token, {"event": "login"})
    _post(agent, "/desk/api/seat", token, {"event": "ready"})
    login_as(lead, "lead")
    assert "班长监控墙" in lead.get("/wallboard/").get_data(as_text=True)
    (seat,) = lead.get("/wallboard/api/state").get_json()["seats"]
    assert (seat["extension"], seat["agent"], seat["label"]) == ("8001", "话务员01", "示闲")


def test_writing_tickets_from_the_desk(
    app: Flask, login_as: Login, db: sessionmaker[Session], people: Any
) -> None:
    client = app.test_client()
    token = login_as(client, "agent1")
    bad = _post(client, "/desk/api/tickets", token, {"content": "", "outcome": "dispatch"})
    assert bad.status_code == 400
    assert bad.get_json()["errors"] == {
        "content": "请填写诉求内容",
        "department_id": "派单请选择承办单位",
        "category_code": "派单请选择诉求分类",
    }
    resolved = _post(
        client,
        "/desk/api/tickets",
        token,
        {
            "content": "咨询社保卡办理地点",
            "outcome": "resolve",
            "answer": "市政务服务中心一楼",
            "caller_phone": "13800000000",
        },
    )
    assert resolved.status_code == 201 and resolved.get_json()["status"] == "直接办结"
    dispatched = _post(
        client,
        "/desk/api/tickets",
        token,
        {
            "content": "小区路灯不亮",
            "outcome": "dispatch",
            "department_id": str(people.department_id),
            "caller_phone": "138-0000-0000",
            "category_code": "010101",
            "district": "钟山区",
            "urgency": "urgent",
        },
    )
    assert dispatched.status_code == 201 and dispatched.get_json()["status"] == "待签收"
    unknown = _post(
        client,
        "/desk/api/tickets",
        token,
        {"content": "x", "outcome": "dispatch", "department_id": "999", "category_code": "010101"},
    )
    assert unknown.status_code == 400
    with db() as session:
        tickets = session.scalars(select(Ticket).order_by(Ticket.id)).all()
    assert [(t.status, t.caller_phone) for t in tickets] == [
        (TicketStatus.RESOLVED_DIRECTLY, "13800000000"),
        (TicketStatus.DISPATCHED, "13800000000"),
    ]  # nothing was created for the refused forms


def test_the_screen_pop_history_shows_open_tickets_first(
    app: Flask, login_as: Login, db: sessionmaker[Session]
) -> None:
    with transaction(db) as session:
        old = create_ticket(session, channel=Channel.PHONE, content="旧的咨询", caller_phone="13900000000")
        old.status = TicketStatus.CLOSED
        create_ticket(session, channel=Channel.PHONE, content="水管爆裂", caller_phone="13900000000")
        create_ticket(session, channel=Channel.PHONE, content="别人的", caller_phone="13700000000")
    client = app.test_client()
    login_as(client, "agent1")
    tickets = client.get("/desk/api/history?phone=13900000000").get_json()["tickets"]
    assert [(t["title"], t["open"]) for t in tickets] == [("水管爆裂", True), ("旧的咨询", False)]


def test_the_seat_state_carries_the_pop_of_the_seats_own_call(
    app: Flask, login_as: Login, db: sessionmaker[Session]
) -> None:
    import datetime as dt

    from acd.models import Call

    acd = app.extensions["hotline"]["acd"]
    client = app.test_client()
    token = login_as(client, "agent1")
    _post(client, "/desk/api/seat", token, {"event": "login"})
    _post(client, "/desk/api/seat", token, {"event": "ready"})
    assert client.get("/desk/api/state").get_json()["call"] is None
    # A caller waited 30 s in the queue; the ACD offers it to this seat, as a SIP worker's round does.
    queued = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
    # The caller stayed silent once, then said 人工: the pop reads the way in words, not node ids.
    path = [
        {"node": "entry", "via": "start"},
        {"node": "entry", "via": "timeout", "result": "replay"},
        {"node": "entry", "input": "0", "via": "speech", "word": "人工", "action": "queue"},
        {"node": "entry", "queue": "general"},
    ]
    with transaction(db) as session:
        call = Call(call_id="c-7", caller="13900000000", queued_at=queued, queue="general")
        call.ivr_path = path
        session.add(call)
    acd.set_registered("8001", True)
    acd.enqueue("c-7", "general", caller="13900000000", worker="w1")
    assert [offer.extension for offer in acd.dispatch(worker="w1")] == ["8001"]
    state = client.get("/desk/api/state").get_json()
    assert state["label"] == "振铃" and state["call"]["caller"] == "13900000000"
    assert state["call"]["ivr_steps"] == ["主菜单", "未按键，重播", "语音“人工”（转人工）", "排队：综合"]
    assert state["call"]["wait_s"] >= 30


def test_the_wallboard_endpoint_carries_the_figures(app: Flask, login_as: Login) -> None:
    lead = app.test_client()
    login_as(lead, "lead")
    body = lead.get("/wallboard/api/state").get_json()
    assert set(body) >= {"seats", "queues", "today", "last_15_min", "alerts", "staffing"}
    assert body["today"]["service_level"] is None  # no calls yet: no figure, no false alarm
    assert body["alerts"] == []


def test_the_catalog_suggests_a_department_and_flags_duplicates(
    app: Flask, login_as: Login, db: sessionmaker[Session]
) -> None:
    with transaction(db) as session:
        session.add(Department(code="urban-management", name="市综合行政执法局", kind=DepartmentKind.BUREAU))
        session.flush()
        seed_catalog(session)
        create_ticket(session, channel=Channel.PHONE, content="路灯又坏了", caller_phone="13600000000")
    client = app.test_client()
    login_as(client, "agent1")
    page = client.get("/desk/").get_data(as_text=True)
    assert "010101" in page and "路灯" in page  # the category list comes from the catalog
    body = client.get("/desk/api/suggest?category=010101&district=钟山区&phone=13600000000").get_json()
    assert body["suggestions"][0]["department"] == "市综合行政执法局"
    assert [d["title"] for d in body["duplicates"]] == ["路灯又坏了"]
    assert body["duplicates"][0]["open"] is True


def test_the_department_report_page_and_exports(app: Flask, login_as: Login) -> None:
    lead, agent = app.test_client(), app.test_client()
    login_as(lead, "lead")
    page = lead.get("/reports/departments?period=month&date=2026-11-27")
    assert page.status_code == 200 and "承办单位考核（2026年11月）" in page.get_data(as_text=True)
    assert "市住房和城乡建设局" in page.get_data(as_text=True)
    exported = lead.get("/reports/departments?period=week&date=2026-11-27&format=csv")
    assert exported.mimetype == "text/csv" and exported.data.decode("utf-8-sig").startswith("排名,承办单位")
    xlsx = lead.get("/reports/departments?format=xlsx")
    assert xlsx.data[:2] == b"PK"  # a zip container, as .xlsx files are
    login_as(agent, "agent1")
    assert agent.get("/reports/departments").status_code == 403


def test_agents_search_the_knowledge_base_and_supervisors_publish(
    app: Flask, login_as: Login, db: sessionmaker[Session]
) -> None:
    lead, agent = app.test_client(), app.test_client()
    token = login_as(lead, "lead")
    lead.post(
        "/knowledge/", data={"title": "公积金提取", "body": "租房提取需提供租赁合同。", "csrf_token": token}
    )
    with db() as session:
        article_id = session.scalars(select(Article.id)).one()
    lead.post(f"/knowledge/{article_id}/submit", data={"csrf_token": token})
    own = lead.post(f"/knowledge/{article_id}/approve", data={"csrf_token": token}, follow_redirects=True)
    assert "审核人不能是作者本人" in own.get_data(as_text=True)
    login_as(agent, "agent1")
    assert agent.get("/knowledge/search?q=公积金").get_json()["articles"] == []  # not yet published
    assert agent.get("/knowledge/").status_code == 403  # agents search; supervisors manage
    with transaction(db) as session:
        other = User(username="lead2", display_name="班长2", role=Role.SUPERVISOR, password_hash="x")
        session.add(other)
        session.flush()
        knowledge.act(session, session.get(Article, article_id), ArticleAction.APPROVE, other.id)  # type: ignore[arg-type]
    (found,) = agent.get("/knowledge/search?q=公积金 租房").get_json()["articles"]
    assert found["title"] == "公积金提取"
    assert "知识库" in agent.get("/desk/").get_data(as_text=True)
