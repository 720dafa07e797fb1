"""Open311 GeoReport v2: services from the catalog, form-encoded POST with api_key, reads back in JSON
and XML, the spec's error list; and the PyPI client `georeport` reading from a live server."""

from __future__ import annotations

import datetime as dt
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from georeport import GeoReport
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from hotline.db import transaction
from hotline.settings import Settings
from hotline.web import close_app, create_public_app
from tickets import dispatch, open311_keys
from tickets.models import Channel, RequestKind, Ticket, TicketStatus
from tickets.models_outcomes import Notification, Open311Client, Open311Request
from tickets.revisit import approve_reply

V2 = "/open311/v2"


@pytest.fixture
def api_key(db: sessionmaker[Session], departments: dict[str, int]) -> str:
    with transaction(db) as session:
        return open311_keys.issue_api_key(session, "随手拍 App", "dev@example.cn")


def _post(client: FlaskClient, fmt: str = "json", **fields: str) -> Any:
    return client.post(f"{V2}/requests.{fmt}", data=fields)


def _xml(data: bytes) -> ET.Element:
    return ET.fromstring(data)


def test_services_and_definitions_come_from_the_category_catalog(app: Flask) -> None:
    client = app.test_client()
    services = client.get(f"{V2}/services.json")
    assert services.status_code == 200 and services.content_type.startswith("application/json")
    lamp = next(s for s in services.json if s["service_code"] == "010101")
    assert lamp == {
        "service_code": "010101",
        "service_name": "路灯",
        "description": "城乡建设 / 市政设施 / 路灯",
        "metadata": True,
        "type": "realtime",
        "keywords": "市政设施",
        "group": "城乡建设",
    }
    noise = next(s for s in services.json if s["service_code"] == "040101")
    assert "广场舞" in noise["keywords"].split(",")  # the dispatch catalog's keywords
    assert all(len(s["service_code"]) == 6 and s["service_code"][4:] != "00" for s in services.json)
    tree = _xml(client.get(f"{V2}/services.xml").data)
    assert tree.tag == "services" and len(tree) == len(services.json)
    assert tree.find("service/service_name").text == services.json[0]["service_name"]  # type: ignore[union-attr]
    definition = _xml(client.get(f"{V2}/services/010101.xml").data)
    assert definition.findtext("service_code") == "010101"
    kinds = definition.findall("attributes/attribute[code='request_kind']/values/value/name")
    assert [k.text for k in kinds][:3] == ["咨询", "求助", "投诉"]
    for fmt in ("json", "xml"):
        for path in (f"services/999999.{fmt}", f"services/010100.{fmt}", f"nothing.{fmt}"):
            assert client.get(f"{V2}/{path}").status_code == 404
    missing = client.get(f"{V2}/services/999999.xml")
    error = _xml(missing.data).find("error")
    assert (
        error is not None
        and error.findtext("code") == "404"
        and "999999" in (error.findtext("description") or "")
    )
    discovery = client.get(f"{V2}/discovery.json").json
    assert discovery["endpoints"][0]["url"].endswith("/open311/v2")
    assert "text/xml" in discovery["endpoints"][0]["formats"]


def test_posting_needs_an_api_key_and_answers_bad_requests_with_the_error_list(
    app: Flask, db: sessionmaker[Session], api_key: str
) -> None:
    client = app.test_client()
    no_key = _post(client, service_code="010101", lat="26.59", long="104.83")
    assert no_key.status_code == 403 and no_key.json == [{"code": 403, "description": "缺少 api_key"}]
    bad_key = _post(client, "xml", api_key="o311_forged", service_code="010101", lat="26.59", long="104.83")
    assert bad_key.status_code == 403 and _xml(bad_key.data).tag == "errors"
    cases: list[tuple[dict[str, str], str]] = [
        ({"lat": "26.59", "long": "104.83"}, "缺少 service_code"),
        ({"service_code": "999999", "address_string": "钟山区"}, "service_code 999999 不存在"),
        ({"service_code": "010101"}, "需提供位置"),
        ({"service_code": "010101", "lat": "north", "long": "104.8"}, "应同时提供且为数字"),
        ({"service_code": "010101", "address_string": "x", "description": "长" * 4001}, "不能超过 4000"),
        ({"service_code": "010101", "address_string": "x", "email": "not-an-address"}, "email 格式不正确"),
        ({"service_code": "010101", "address_string": "x", "media_url": "file:///etc/passwd"}, "media_url"),
    ]
    for fields, message in cases:
        response = _post(client, api_key=api_key, **fields)
        assert response.status_code == 400, fields
        assert response.json[0]["code"] == 400 and message in response.json[0]["description"]
    as_json = client.post(f"{V2}/requests.json", json={"api_key": api_key, "service_code": "010101"})
    assert as_json.status_code == 400 and "表单编码" in as_json.json[0]["description"]
    # Several problems at once are all listed.
    both = _post(client, "xml", api_key=api_key, email="x")
    assert len(_xml(both.data).findall("error")) == 3
    with db() as session:
        assert session.scalars(select(Ticket)).all() == []
        client_row = session.scalars(select(Open311Client)).one()
        assert client_row.key_hash != api_key and client_row.prefix == api_key[:12]


def test_a_posted_request_becomes_a_ticket_and_reads_back_with_its_outcome(
    app: Flask, db: sessionmaker[Session], departments: dict[str, int], api_key: str
) -> None:
    client = app.test_client()
    created = _post(
        client,
        "xml",
        api_key=api_key,
        service_code="010101",
        lat="26.5945",
        long="104.8302",
        address_string="钟山区人民中路 12 号",
        description="小区门口路灯不亮",
        email="citizen@example.cn",
        phone="13800001111",
        first_name="小明",
        last_name="王",
        media_url="https://img.example.cn/lamp.jpg",
        **{"attribute[request_kind]": "complaint"},
    )
    assert created.status_code == 200
    number = _xml(created.data).findtext("request/service_request_id")
    assert number
    with db() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        assert (ticket.channel, ticket.caller_name, ticket.district) == (Channel.OPEN311, "王小明", "钟山区")
        assert ticket.request_kind is RequestKind.COMPLAINT and ticket.category_code == "010101"
        extra = session.get_one(Open311Request, ticket.id)
        assert (extra.lat, extra.long, extra.email) == (26.5945, 104.8302, "citizen@example.cn")
        media = {n.medium.value for n in session.scalars(select(Notification)) if n.kind == "ticket.accepted"}
        assert media == {"webhook", "email"}  # SMS to the phone, mail to the address
    one = client.get(f"{V2}/requests/{number}.json").json[0]
    assert one["status"] == "open" and one["status_notes"] == "已受理" and one["lat"] == 26.5945
    assert one["requested_datetime"].endswith("+08:00") and one["media_url"].startswith("https://")
    assert "王" not in str(one) and "13800001111" not in str(one)  # no reporter, ever
    with transaction(db) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        dispatch.dispatch(session, ticket, departments["urban-management"])
        dispatch.sign(session, ticket, departments["urban-management"])
        dispatch.reply(session, ticket, departments["urban-management"], "已更换灯泡。")
        approve_reply(session, ticket)
        assert ticket.status is TicketStatus.REVIEWED
    after = _xml(client.get(f"{V2}/requests/{number}.xml").data).find("request")
    assert after is not None
    assert after.findtext("status") == "closed" and after.findtext("status_notes") == "已更换灯泡。"
    assert after.findtext("agency_responsible") == "市综合行政执法局"
    token = client.get(f"{V2}/tokens/{number}.json").json
    assert token == [{"service_request_id": number, "token": number}]
    assert client.get(f"{V2}/tokens/nope.json").status_code == 404


def test_listing_filters_by_id_code_status_and_a_range_of_at_most_90_days(
    app: Flask, db: sessionmaker[Session], api_key: str, make_ticket: Callable[..., str]
) -> None:
    client = app.test_client()
    numbers = [
        _post(client, api_key=api_key, service_code=code, address_string="水城区", description=text).json[0][
            "service_request_id"
        ]
        for code, text in (("010101", "路灯"), ("020101", "停水"), ("010101", "保密"))
    ]
    with transaction(db) as session:
        secret = session.scalars(select(Ticket).where(Ticket.number == numbers[2])).one()
        secret.confidential = True
    phone_ticket = make_ticket("housing")  # not from Open311: not readable here
    assert client.get(f"{V2}/requests/{phone_ticket}.json").status_code == 404
    everything = client.get(f"{V2}/requests.json").json
    assert [r["service_request_id"] for r in everything] == list(reversed(numbers))
    hidden = everything[0]
    assert hidden["description"] == "" and hidden["address"] == "" and "保密" in hidden["service_notice"]
    lamps = client.get(f"{V2}/requests.json", query_string={"service_code": "010101"}).json
    assert {r["service_request_id"] for r in lamps} == {numbers[0], numbers[2]}
    picked = client.get(
        f"{V2}/requests.json", query_string={"service_request_id": f"{numbers[1]},{phone_ticket}"}
    )
    assert [r["service_request_id"] for r in picked.json] == [numbers[1]]
    assert client.get(f"{V2}/requests.json", query_string={"status": "closed"}).json == []
    assert len(client.get(f"{V2}/requests.json", query_string={"status": "open"}).json) == 3
    now = dt.datetime.now(dt.UTC)
    old = {
        "start_date": (now - dt.timedelta(days=200)).isoformat(),
        "end_date": (now - dt.timedelta(days=150)).isoformat(),
    }
    assert client.get(f"{V2}/requests.json", query_string=old).json == []
    too_long = {"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-06-01T00:00:00+08:00"}
    for bad in (too_long, {"start_date": "yesterday"}, {"status": "pending"}):
        response = client.get(f"{V2}/requests.xml", query_string=bad)
        assert response.status_code == 400 and _xml(response.data).findtext("error/code") == "400"


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}{V2}"
    server.shutdown()
    thread.join(timeout=5)


def test_the_georeport_client_reads_services_and_requests_in_json_and_xml(
    app: Flask, api_key: str, live_server: str
) -> None:
    client = app.test_client()
    posted = _post(
        client, api_key=api_key, service_code="020101", address_string="盘州市", description="停水两天"
    )
    number = posted.json[0]["service_request_id"]
    for fmt in ("json", "xml"):
        reader = GeoReport(live_server, output_format=fmt)
        services = reader.get_service_list()
        assert any(s["service_code"] == "020101" and s["service_name"] == "停水" for s in services)
        definition = reader.get_service_definition("020101")
        assert definition["service_code"] == "020101"
        listed = reader.get_service_requests(service_code="020101", status="open")
        # georeport returns a dict instead of a one-item list for a single XML result.
        listed = listed if isinstance(listed, list) else [listed]
        assert [r["service_request_id"] for r in listed] == [number]
        one = reader.get_service_request(number)
        assert one["service_request_id"] == number and one["description"] == "停水两天"
        assert one["status"] == "open"


def test_the_public_web_takes_a_posted_request_and_reads_it_back(
    settings: Settings, db: sessionmaker[Session], api_key: str
) -> None:
    """`hotline web --public` (the process facing the internet) serves Open311 like the internal web."""
    public = create_public_app(settings)
    try:
        client = public.test_client()
        created = _post(
            client, api_key=api_key, service_code="010101", address_string="钟山区", description="路灯不亮"
        )
        assert created.status_code == 200, created.data
        number = created.json[0]["service_request_id"]
        read = client.get(f"{V2}/requests/{number}.json").json
        assert read[0]["service_request_id"] == number and read[0]["description"] == "路灯不亮"
        assert client.get("/login").status_code == 404  # no staff pages out there
    finally:
        close_app(public)
