"""The department API: hashed tokens, own tickets only, masking, idempotent sign and reply."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from tickets import api_tokens
from tickets.models import ApiToken, Ticket, TicketEvent, TicketStatus

API = "/api/dept/v1"


@pytest.fixture
def tokens(db: sessionmaker[Session], departments: dict[str, int]) -> dict[str, str]:
    with transaction(db) as session:
        return {
            code: api_tokens.issue_token(session, code, f"{code} 业务系统")
            for code in ("housing", "water-supply")
        }


def _headers(token: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _events(db: sessionmaker[Session], number: str) -> list[str]:
    with db() as session:
        query = (
            select(TicketEvent.action).join(Ticket).where(Ticket.number == number).order_by(TicketEvent.id)
        )
        return list(session.scalars(query))


def test_tokens_are_stored_hashed_and_checked(
    app: Flask, db: sessionmaker[Session], tokens: dict[str, str]
) -> None:
    client = app.test_client()
    with db() as session:
        stored = session.scalars(select(ApiToken)).all()
        assert all(t.token_hash not in tokens.values() and t.prefix.startswith("dpt_") for t in stored)
    missing = client.get(f"{API}/tickets")
    assert missing.status_code == 401 and missing.json == {
        "error": {"code": "unauthorized", "message": "缺少访问令牌（Authorization: Bearer <token>）"}
    }
    assert client.get(f"{API}/tickets", headers=_headers("dpt_forged")).status_code == 401
    assert client.get(f"{API}/tickets", headers=_headers(tokens["housing"])).status_code == 200
    with transaction(db) as session:
        assert api_tokens.revoke_token(session, tokens["housing"][:12]) == 1
    revoked = client.get(f"{API}/tickets", headers=_headers(tokens["housing"]))
    assert revoked.status_code == 401 and revoked.json["error"]["message"] == "访问令牌无效或已吊销"
    with pytest.raises(LookupError):
        with transaction(db) as session:
            api_tokens.issue_token(session, "no-such-department", "x")


def test_a_department_system_sees_only_its_tickets_masked(
    app: Flask, tokens: dict[str, str], make_ticket: Callable[..., str]
) -> None:
    mine = make_ticket("housing")
    secret = make_ticket("housing", confidential=True, caller_name="李四")
    theirs = make_ticket("water-supply", category_code="020101", content="停水")
    client = app.test_client()
    listed = client.get(f"{API}/tickets", headers=_headers(tokens["housing"])).json
    assert [t["number"] for t in listed["tickets"]] == [mine, secret]
    first = listed["tickets"][0]
    assert first["reporter"] == {"name": "张*", "phone": "138****1234", "masked": True}
    assert (
        first["role"] == "lead"
        and first["status_label"] == "待签收"
        and first["reply_deadline"].endswith("+00:00")
    )
    assert listed["tickets"][1]["reporter"]["name"] == "（保密）" and "李四" not in str(listed)
    one = client.get(f"{API}/tickets/{mine}", headers=_headers(tokens["housing"])).json
    assert [h["action_label"] for h in one["history"]] == ["受理", "派单"]
    hidden = client.get(f"{API}/tickets/{theirs}", headers=_headers(tokens["housing"]))
    assert hidden.status_code == 404 and hidden.json["error"]["code"] == "not_found"
    for step in ("sign", "reply", "return"):
        refused = client.post(
            f"{API}/tickets/{theirs}/{step}",
            json={"text": "x", "reason": "x"},
            headers=_headers(tokens["housing"], step),
        )
        assert refused.status_code == 404


def test_a_replayed_request_returns_the_first_answer_and_changes_nothing(
    app: Flask, db: sessionmaker[Session], tokens: dict[str, str], make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("housing")
    client = app.test_client()
    token = tokens["housing"]
    no_key = client.post(f"{API}/tickets/{number}/sign", headers=_headers(token))
    assert no_key.status_code == 400 and no_key.json["error"]["code"] == "idempotency_key_required"

    signed = client.post(f"{API}/tickets/{number}/sign", headers=_headers(token, "sign-1"))
    assert signed.status_code == 200 and signed.json["ticket"]["status"] == "signed"
    replay = client.post(f"{API}/tickets/{number}/sign", headers=_headers(token, "sign-1"))
    assert replay.status_code == 200 and replay.json == signed.json
    assert replay.headers["Idempotent-Replayed"] == "true"
    fresh_key = client.post(f"{API}/tickets/{number}/sign", headers=_headers(token, "sign-2"))
    assert fresh_key.status_code == 409
    assert fresh_key.json["error"]["message"] == "工单当前状态为“已签收”，不能签收"

    body = {"text": "已更换路灯灯泡"}
    replied = client.post(f"{API}/tickets/{number}/reply", json=body, headers=_headers(token, "reply-1"))
    assert replied.status_code == 200 and replied.json["ticket"]["reply"] == "已更换路灯灯泡"
    again = client.post(f"{API}/tickets/{number}/reply", json=body, headers=_headers(token, "reply-1"))
    assert again.json == replied.json
    other = client.post(
        f"{API}/tickets/{number}/reply", json={"text": "别的"}, headers=_headers(token, "reply-1")
    )
    assert other.status_code == 422 and other.json["error"]["code"] == "idempotency_key_reused"
    assert _events(db, number) == ["accept", "dispatch", "sign", "reply"]

    # Keys belong to one department: the same key elsewhere is a new request.
    water_ticket = make_ticket("water-supply", category_code="020101")
    water = client.post(
        f"{API}/tickets/{water_ticket}/sign", headers=_headers(tokens["water-supply"], "sign-1")
    )
    assert water.status_code == 200 and water.json["ticket"]["number"] == water_ticket


def test_bad_bodies_are_refused_with_a_reason(
    app: Flask, tokens: dict[str, str], make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("housing")
    client = app.test_client()
    headers = _headers(tokens["housing"], "bad-1")
    not_json = client.post(f"{API}/tickets/{number}/reply", data="text", headers=headers)
    assert not_json.status_code == 400 and not_json.json["error"]["message"] == "请求体应为 JSON 对象"
    empty = client.post(f"{API}/tickets/{number}/return", json={"reason": " "}, headers=headers)
    assert empty.status_code == 400 and "reason" in empty.json["error"]["message"]
    # A refused request stored nothing, so the key can carry the corrected one.
    done = client.post(f"{API}/tickets/{number}/return", json={"reason": "不属本单位职责"}, headers=headers)
    assert done.status_code == 200 and done.json["ticket"]["status"] == "returned"


def test_the_same_key_sent_twice_at_once_acts_once(
    app: Flask, db: sessionmaker[Session], tokens: dict[str, str], make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("housing")
    answers: list[Any] = []
    start = threading.Barrier(4)

    def send() -> None:
        client = app.test_client()
        start.wait()
        response = client.post(f"{API}/tickets/{number}/sign", headers=_headers(tokens["housing"], "same"))
        answers.append((response.status_code, response.json))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [code for code, _ in answers] == [200] * 4
    assert all(body == answers[0][1] for _, body in answers)
    assert _events(db, number).count("sign") == 1
    with db() as session:
        assert session.scalar(select(func.count()).where(Ticket.status == TicketStatus.SIGNED)) == 1
