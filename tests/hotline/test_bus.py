"""The event bus: every process publishes, readers follow, nobody misses events across an outage."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import redis

from hotline import bus, embedded_redis
from tests.helpers import wait_until


def test_published_events_reach_a_follower_in_order(event_bus: bus.EventBus) -> None:
    received: list[bus.Event] = []
    stop = threading.Event()
    ready = threading.Event()

    def follow() -> None:
        ready.set()
        for event in event_bus.follow(block_ms=100, stop=stop.is_set):
            received.append(event)
            if len(received) == 3:
                stop.set()

    thread = threading.Thread(target=follow)
    thread.start()
    ready.wait()
    time.sleep(0.05)
    for n in range(3):
        event_bus.publish(
            "call.arrived", {"caller": f"1380000000{n}", "名称": "市民"}, rooms=("supervisors", "seat:8001")
        )
    thread.join(timeout=10)
    assert [e.data["caller"] for e in received] == ["13800000000", "13800000001", "13800000002"]
    assert received[0].rooms == ("supervisors", "seat:8001")
    assert received[0].data["名称"] == "市民"


def test_a_follower_that_loses_redis_resumes_without_missing_events(tmp_path: Path) -> None:
    socket = tmp_path / "redis.sock"
    server = embedded_redis.start(socket, tmp_path / "data")
    client = bus.connect(f"unix://{socket}", timeout_s=1)
    follower_bus = bus.EventBus(client)
    received: list[str] = []
    stop = threading.Event()

    def follow() -> None:
        for event in follower_bus.follow(last_id="0-0", block_ms=100, stop=stop.is_set, max_backoff_s=0.5):
            received.append(event.data["n"])

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        publisher = bus.EventBus(bus.connect(f"unix://{socket}"))
        publisher.publish("n", {"n": "before"})
        assert wait_until(lambda: received == ["before"])
        # Redis goes away (the AOF keeps the stream), comes back, and events go on.
        server.terminate()
        server.wait(timeout=10)
        server = embedded_redis.start(socket, tmp_path / "data")
        publisher = bus.EventBus(bus.connect(f"unix://{socket}"))
        publisher.publish("n", {"n": "during-outage-1"})
        publisher.publish("n", {"n": "during-outage-2"})
        assert wait_until(lambda: len(received) == 3, timeout=15)
        assert received == ["before", "during-outage-1", "during-outage-2"]
    finally:
        stop.set()
        thread.join(timeout=10)
        server.terminate()
        server.wait(timeout=10)


def test_heartbeats_expire_when_a_part_stops(redis_client: redis.Redis) -> None:
    bus.heartbeat(
        redis_client, "sip", "sip-worker-0", {"free_legs": 4, "address": "127.0.0.1:5100"}, ttl_s=0.3
    )
    bus.heartbeat(redis_client, "sip", "sip-worker-1", {"free_legs": 2}, ttl_s=30)
    alive = bus.alive(redis_client, "sip")
    assert alive["sip-worker-0"]["free_legs"] == 4 and alive["sip-worker-1"]["free_legs"] == 2
    assert wait_until(lambda: set(bus.alive(redis_client, "sip")) == {"sip-worker-1"}, timeout=5)
