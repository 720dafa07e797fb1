"""The web process: /healthz tells the truth about each part, and bus events reach browsers."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from hotline import bus
from hotline.accounts import Role
from hotline.settings import Settings
from hotline.web import close_app, create_app, start_relay
from tests.helpers import logged_in


@pytest.fixture
def app(settings: Settings, engine, redis_client: redis.Redis):  # type: ignore[no-untyped-def]
    app = create_app(settings)
    yield app
    close_app(app)


def test_healthz_reports_database_and_redis_ok_and_sip_down_without_workers(app) -> None:  # type: ignore[no-untyped-def]
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["database"]["ok"] is True and body["database"]["revision"] is not None
    assert body["redis"]["ok"] is True
    assert body["sip"]["ok"] is False and body["sip"]["workers_up"] == 0
    assert body["status"] == "degraded"


def test_healthz_counts_live_sip_workers_and_their_free_legs(app, redis_client: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    bus.heartbeat(redis_client, "sip", "sip-worker-0", {"free_legs": 4, "legs": 0})
    bus.heartbeat(redis_client, "sip", "sip-worker-1", {"free_legs": 2, "legs": 2})
    body = app.test_client().get("/healthz").get_json()
    assert body["sip"]["ok"] is True
    assert body["sip"]["workers_up"] == 2 and body["sip"]["free_legs"] == 6
    # No RQ worker runs in this test: the page says the job part is missing.
    assert body["jobs"]["ok"] is False and body["jobs"]["workers"] == 0
    assert body["status"] == "degraded"


def test_healthz_says_503_when_redis_is_down(settings: Settings, engine) -> None:  # type: ignore[no-untyped-def]
    down = settings.model_copy(update={"redis_url": settings.redis_url.__class__("redis://127.0.0.1:1/0")})
    app = create_app(down)
    response = app.test_client().get("/healthz")
    close_app(app)
    assert response.status_code == 503
    body = response.get_json()
    assert (
        body["status"] == "down" and body["redis"]["ok"] is False and "Connection" in body["redis"]["error"]
    )
    assert body["database"]["ok"] is True


def test_the_home_page_is_in_chinese_and_shows_the_state(app, db) -> None:  # type: ignore[no-untyped-def]
    client, _ = logged_in(app, db, "lead", Role.SUPERVISOR)
    page = client.get("/").get_data(as_text=True)
    assert "12345 政务服务便民热线" in page and "数据库" in page and "正常" in page and "班长" in page


def test_a_bus_event_reaches_the_socketio_room_it_names(app, db, event_bus: bus.EventBus) -> None:  # type: ignore[no-untyped-def]
    socketio = app.extensions["hotline"]["socketio"]
    browser, token = logged_in(app, db, "lead", Role.SUPERVISOR)
    client = socketio.test_client(app, flask_test_client=browser, auth={"csrf": token})
    assert client.is_connected()
    relay_stop = threading.Event()
    relay = start_relay(app, relay_stop)
    try:
        time.sleep(0.3)  # the relay follows from "now"
        event_bus.publish("call.arrived", {"caller": "13800000000"}, rooms=("role:supervisor",))
        event_bus.publish("call.arrived", {"caller": "13900000000"}, rooms=("role:agent",))
        deadline = time.monotonic() + 10
        received: list[dict] = []  # type: ignore[type-arg]
        while time.monotonic() < deadline and not received:
            received = client.get_received()
            time.sleep(0.05)
        time.sleep(0.3)
        received += client.get_received()
        # Only the room it names: the agents' event never reaches the supervisor.
        assert [r["args"][0]["data"] for r in received if r["name"] == "call.arrived"] == [
            {"caller": "13800000000"}
        ]
    finally:
        relay_stop.set()
        relay.join(timeout=5)
