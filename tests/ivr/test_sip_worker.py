"""A SIP worker on its own: it answers, greets, holds at most 4 calls, reports them, stops cleanly."""

from __future__ import annotations

import math
import re
import signal
import struct
import wave
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hotline import bus, embedded_redis

if TYPE_CHECKING:  # fixtures' types; tests/ivr/conftest.py is not an importable module
    from tests.ivr.conftest import RtpSink, Softswitch

CALLER = "13800138000"

pytestmark = pytest.mark.sip


def test_a_worker_answers_options_and_a_call_and_reports_it_on_the_bus(
    softswitch: Softswitch, rtp_sink: Callable[[], RtpSink]
) -> None:
    worker = softswitch.worker(0)
    port = softswitch.settings.sip_worker_base_port
    assert softswitch.options(port).startswith("SIP/2.0 200")

    sink = rtp_sink()
    caller = softswitch.sipp(port, talk_ms=1500, rtp_port=sink.port, caller=CALLER)
    assert caller.wait() == 0, caller.output()

    # No greeting rendered: the line stays open, silent, until the caller hangs up.
    assert sink.seconds > 1.2 and len(sink.packets) > 50
    assert sink.rms(0, 1.5) < 100

    ended = softswitch.wait_for(lambda: softswitch.events("call.ended"), timeout=5)
    (arrived,) = softswitch.events("call.arrived")
    (ended,) = ended
    assert arrived.data["call_id"] == ended.data["call_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", arrived.data["call_id"])
    assert arrived.data["sip_call_id"] == ended.data["sip_call_id"] != arrived.data["call_id"]
    assert arrived.data["caller"] == CALLER and arrived.data["worker"] == "sip-worker-0"
    assert ended.data["talk_seconds"] >= 1.4

    # The heartbeat (refreshed every second) shows the worker idle again.
    beat = softswitch.wait_for(lambda: (b := softswitch.workers_alive()["sip-worker-0"])["legs"] == 0 and b)
    assert beat["address"] == f"127.0.0.1:{port}" and beat["pid"] == worker.proc.pid
    assert beat["free_legs"] == 4


def test_a_third_concurrent_caller_hears_busy_as_each_caller_keeps_a_leg_for_its_seat(
    softswitch: Softswitch,
) -> None:
    softswitch.worker(0)
    port = softswitch.settings.sip_worker_base_port
    two = softswitch.sipp(port, calls=2, concurrent=2, talk_ms=4000)
    assert softswitch.arrived(2), two.output()
    # Two of four legs in use, the other two kept for the callers' seat legs; the heartbeat says so.
    assert softswitch.wait_for(lambda: softswitch.workers_alive()["sip-worker-0"]["legs"] == 2, timeout=3)

    third = softswitch.sipp(port, scenario="busy.xml")
    assert third.wait() == 0, third.output()  # 486 Busy Here, nothing else

    assert two.wait() == 0, two.output()
    assert softswitch.wait_for(lambda: len(softswitch.events("call.ended")) == 2, timeout=5)
    assert len(softswitch.events("call.arrived")) == 2  # the busy call never became a call


def _tone_wav(path: Path, seconds: float, hz: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = 8000
    samples = (int(12000 * math.sin(2 * math.pi * hz * n / rate)) for n in range(int(seconds * rate)))
    frames = b"".join(struct.pack("<h", sample) for sample in samples)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return path


def test_a_caller_on_the_public_port_hears_the_greeting_then_silence(
    softswitch: Softswitch, rtp_sink: Callable[[], RtpSink], tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts"
    _tone_wav(prompts / "audio" / "zh" / "greeting.wav", seconds=1.0)
    softswitch.worker(0, public=True, env={"HOTLINE_PROMPTS_DIR": str(prompts)})

    sink = rtp_sink()
    caller = softswitch.sipp(softswitch.settings.sip_port, talk_ms=2500, rtp_port=sink.port)
    assert caller.wait() == 0, caller.output()

    assert sink.rms(0.1, 0.8) > 3000  # the greeting
    assert sink.rms(1.3, 2.3) < 100  # then silence, line still open
    assert sink.seconds > 2.2


def test_calls_go_on_while_redis_is_down_and_are_reported_when_it_returns(
    softswitch: Softswitch, tmp_path: Path
) -> None:
    socket_path = tmp_path / "later" / "redis.sock"
    softswitch.worker(0, env={"REDIS_URL": f"unix://{socket_path}"})
    port = softswitch.settings.sip_worker_base_port

    caller = softswitch.sipp(port, talk_ms=500)
    assert caller.wait() == 0, caller.output()

    redis_server = embedded_redis.start(socket_path, tmp_path / "later-data")
    client = bus.connect(f"unix://{socket_path}")
    try:

        def calls() -> list[str]:
            types = [fields["type"] for _id, fields in client.xrange(bus.EVENTS_STREAM)]
            return [t for t in types if t.startswith("call.")]

        assert softswitch.wait_for(lambda: "call.ended" in calls(), timeout=5)
        assert calls() == ["call.arrived", "call.ended"]  # kept while Redis was away, in order
        beating = lambda: any(n.startswith("sip-worker-0@") for n in bus.alive(client, "sip"))  # noqa: E731
        assert softswitch.wait_for(beating, timeout=3)
    finally:
        client.close()
        redis_server.terminate()
        redis_server.wait(timeout=10)


def test_sigterm_hangs_up_the_callers_and_exits_cleanly(softswitch: Softswitch) -> None:
    worker = softswitch.worker(0)
    port = softswitch.settings.sip_worker_base_port
    callers = softswitch.sipp(port, scenario="hung_up.xml", calls=2, concurrent=2)
    assert softswitch.arrived(2), callers.output()

    assert worker.stop(signal.SIGTERM, timeout=5) == 0, worker.output()
    assert callers.wait(timeout=5) == 0, callers.output()  # each caller got a BYE
    assert len(softswitch.events("call.ended")) == 2
    assert "sip-worker-0" not in softswitch.workers_alive()


def test_a_worker_whose_port_is_taken_exits_with_an_error_and_the_running_one_carries_on(
    softswitch: Softswitch,
) -> None:
    softswitch.worker(0)
    port = softswitch.settings.sip_worker_base_port
    twin = softswitch.worker(0, wait=False)
    assert twin.proc.wait(timeout=10) == 1  # the supervisor sees a failure and retries later
    assert f"cannot start: SIP on 127.0.0.1:{port}: Address already in use" in twin.output()
    assert softswitch.options(port).startswith("SIP/2.0 200")
