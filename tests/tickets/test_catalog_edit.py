"""Administrators edit the dispatch catalog; agents' suggestions follow the edited catalog."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.accounts import AuditEntry
from tickets.models import DispatchRule

Login = Callable[[str], FlaskClient]


def _suggested(agent: FlaskClient, **query: str) -> list[str]:
    answer = agent.get("/desk/api/suggest", query_string=query).get_json()
    return [s["department"] for s in answer["suggestions"]]


def _form(admin: FlaskClient, path: str = "/admin/catalog/") -> dict[str, str]:
    page = admin.get(path).get_data(as_text=True)
    form = page[page.index('id="rule-form"') :]
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    fingerprint = re.search(r'name="fingerprint" value="([^"]+)"', form)
    assert token is not None
    return {"csrf_token": token[1], **({"fingerprint": fingerprint[1]} if fingerprint else {})}


def _send(admin: FlaskClient, path: str, form: dict[str, str], **data: Any) -> tuple[int, str]:
    response = admin.post(path, data={**form, **data}, follow_redirects=True)
    return response.status_code, response.get_data(as_text=True)


def test_an_administrator_adds_edits_and_disables_rules_and_agents_see_the_result(
    db: sessionmaker[Session], login: Login, departments: dict[str, int]
) -> None:
    admin, agent = login("root"), login("agent1")
    lamp = {"category": "010101", "district": "钟山区", "text": "小区路灯杆倒了"}
    assert _suggested(agent, **lamp)[0] == "市综合行政执法局"  # the shipped catalog

    rule = {
        "category_code": "010101",
        "district": "钟山区",
        "keywords": "灯杆、倒伏  灯杆",
        "lead_department_id": str(departments["zhongshan"]),
        "assist_department_ids": [str(departments["zhongshan"]), str(departments["power"])],
        "note": "倒伏灯杆由属地先行处置",
    }
    status, page = _send(admin, "/admin/catalog/", _form(admin), **{**rule, "district": "火星区"})
    assert status == 400 and "区县“火星区”不存在" in page and "倒伏灯杆由属地先行处置" in page  # kept
    status, page = _send(admin, "/admin/catalog/", _form(admin), **{**rule, "category_code": ""})
    assert status == 400 and "请选择有效的诉求分类" in page
    status, page = _send(admin, "/admin/catalog/", _form(admin), **rule)
    assert status == 200 and "已添加目录条目" in page
    with db() as session:
        added = session.scalars(select(DispatchRule).where(DispatchRule.note == rule["note"])).one()
    # Keywords normalised; the lead is not also its own assistant.
    assert added.keywords == "灯杆 倒伏" and added.assist_department_ids == [departments["power"]]
    assert _suggested(agent, **lamp)[0] == "钟山区"
    again = _send(admin, "/admin/catalog/", _form(admin), **rule)
    assert again[0] == 400 and f"#{added.id}" in again[1]  # the same condition twice is refused

    path = f"/admin/catalog/{added.id}"
    opened = _form(admin, path)  # a second administrator opened the same entry earlier
    status, page = _send(
        admin, path, _form(admin, path), **{**rule, "lead_department_id": departments["power"]}
    )
    assert "已保存目录条目" in page and _suggested(agent, **lamp)[0] == "六盘水供电局"
    status, page = _send(admin, path, opened, **{**rule, "note": "旧页面的修改"})
    assert status == 400 and "已被他人修改" in page

    _send(admin, f"/admin/catalog/{added.id}/active", _form(admin, path), active="0")
    assert _suggested(agent, **lamp)[0] == "市综合行政执法局"
    with db() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_type == "dispatch_rule").order_by(AuditEntry.id)
        ).all()
    assert actions == ["catalog.add", "catalog.edit", "catalog.disable"]


def test_only_administrators_edit_the_catalog(login: Login) -> None:
    for username in ("agent1", "lead", "dept-housing"):
        client = login(username)
        assert client.get("/admin/catalog/").status_code == 403
        assert client.post("/admin/catalog/1/active", data={"active": "0"}).status_code in (400, 403)
