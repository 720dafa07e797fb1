"""Kamailio in front of the workers: answers for itself, spreads calls, routes around dead or full
workers, and shrugs off malformed messages and floods."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hotline.settings import Settings
from ivr import kamailio

if TYPE_CHECKING:  # fixtures' types; tests/ivr/conftest.py is not an importable module
    from tests.ivr.conftest import Softswitch

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(kamailio.find_binary(Settings()) is None, reason="kamailio is not installed"),
]


def _dispatcher_states(settings: Settings) -> dict[str, str]:
    """Worker URI -> dispatcher flags ("AP" active, "IP" inactive and probed), as kamcmd shows them."""
    ctl = kamailio.runtime_dir(settings) / "kamailio_ctl"
    argv = ["kamcmd", "-s", f"unix:{ctl}", "dispatcher.list"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=True).stdout
    return dict(re.findall(r"URI: (\S+)\s+FLAGS: (\S+)", out))


def _worker_of(softswitch: Softswitch, since: int = 0) -> list[str]:
    return [e.data["worker"] for e in softswitch.events("call.arrived")[since:]]


def test_the_rendered_config_passes_kamailios_own_check(softswitch: Softswitch) -> None:
    settings = softswitch.settings
    cfg = kamailio.render(settings)
    assert cfg == kamailio.runtime_dir(settings) / "kamailio.cfg"
    lines = (cfg.parent / "dispatcher.list").read_text().splitlines()[1:]
    base = settings.sip_worker_base_port
    assert lines == [f"1 sip:127.0.0.1:{base + i} 0 0 duid=sip-worker-{i}" for i in range(3)]

    argv = kamailio.command(settings, cfg)
    assert {"-DD", "-E"} <= set(argv)
    check = subprocess.run([argv[0], "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=10)
    assert check.returncode == 0, check.stderr


def test_a_run_dir_too_deep_for_the_control_socket_is_refused_before_kamailio_starts(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 100)
    with pytest.raises(ValueError, match="too long for a unix socket"):
        kamailio.render(Settings(var_dir=deep))


def test_find_binary_is_none_when_disabled_or_missing() -> None:
    assert kamailio.find_binary(Settings(kamailio_bin="")) is None
    assert kamailio.find_binary(Settings(kamailio_bin="no-such-kamailio-here")) is None
    assert Path(str(kamailio.find_binary(Settings()))).name == "kamailio"


def test_kamailio_spreads_calls_over_the_workers_and_routes_around_a_dead_one(softswitch: Softswitch) -> None:
    workers = [softswitch.worker(i) for i in range(3)]
    softswitch.kamailio()
    port = softswitch.settings.sip_port
    assert (kamailio.runtime_dir(softswitch.settings) / "kamailio_ctl").is_socket()

    six = softswitch.sipp(port, calls=6, concurrent=6, talk_ms=800)
    assert six.wait() == 0, six.output()
    assert sorted(_worker_of(softswitch)) == sorted(f"sip-worker-{i}" for i in range(3) for _ in range(2))

    workers[1].proc.kill()
    workers[1].proc.wait()
    # Calls placed at once: one that Kamailio still sends to the dead worker fails over after 2 s.
    six = softswitch.sipp(port, calls=6, concurrent=6, talk_ms=300)
    assert six.wait() == 0, six.output()
    after_kill = _worker_of(softswitch, since=6)
    assert len(after_kill) == 6 and "sip-worker-1" not in after_kill

    dead = f"sip:127.0.0.1:{softswitch.settings.sip_worker_base_port + 1}"

    def state() -> str:
        return _dispatcher_states(softswitch.settings)[dead]

    assert softswitch.wait_for(lambda: state().startswith("I"), timeout=6)

    # Back on its feet, it is probed active again and gets calls again.
    softswitch.worker(1)
    assert softswitch.wait_for(lambda: state().startswith("A"), timeout=6)
    three = softswitch.sipp(port, calls=3, concurrent=3, talk_ms=300)
    assert three.wait() == 0, three.output()
    assert "sip-worker-1" in _worker_of(softswitch, since=12)


def test_kamailio_killed_outright_starts_again_over_its_leftovers(softswitch: Softswitch) -> None:
    edge = softswitch.kamailio()
    os.killpg(edge.proc.pid, signal.SIGKILL)
    edge.proc.wait()
    assert (kamailio.runtime_dir(softswitch.settings) / "kamailio_ctl").exists()  # left behind
    softswitch.kamailio()  # asserts it answers OPTIONS again


def test_a_full_worker_hands_the_call_on_and_all_full_means_busy(softswitch: Softswitch) -> None:
    one_caller = {"HOTLINE_SIP_LEGS_PER_WORKER": "2"}  # a caller and its seat leg
    softswitch.worker(0, env=one_caller)
    softswitch.worker(1, env=one_caller)
    edge = softswitch.kamailio(workers=2)
    port = softswitch.settings.sip_port

    first = softswitch.sipp(port, talk_ms=1500)
    assert softswitch.arrived(1), first.output()
    second = softswitch.sipp(port, talk_ms=4000)
    assert softswitch.arrived(2), second.output()
    assert sorted(_worker_of(softswitch)) == ["sip-worker-0", "sip-worker-1"]

    third = softswitch.sipp(port, scenario="busy.xml")
    assert third.wait() == 0, third.output()  # the caller hears 486 Busy Here ...
    # ... after Kamailio offered the call to the other worker too.
    assert softswitch.wait_for(lambda: "failing over" in edge.output(), timeout=2), edge.output()
    assert "every worker is busy or down" in edge.output()

    # One leg frees up: the next caller is answered there, whichever worker Kamailio tries first.
    assert first.wait() == 0, first.output()
    freed = _worker_of(softswitch)[0]
    fourth = softswitch.sipp(port, talk_ms=300)
    assert fourth.wait() == 0, fourth.output()
    assert _worker_of(softswitch, since=2) == [freed]
    assert second.wait() == 0, second.output()


def _request(method: str, uri: str, *, cseq: str = "", body: str = "", length: int | None = None) -> bytes:
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{uuid.uuid4().hex[:16]};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@127.0.0.1>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <{uri}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}@127.0.0.1\r\n"
        f"CSeq: {cseq or f'1 {method}'}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n{body}"
    ).encode()


def _send(port: int, message: bytes, timeout_s: float = 0.5) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout_s)
        sock.sendto(message, ("127.0.0.1", port))
        try:
            return sock.recv(65535).split(b"\r\n", 1)[0].decode(errors="replace")
        except TimeoutError:
            return ""


def test_malformed_messages_are_refused_or_dropped_and_kamailio_keeps_answering(
    softswitch: Softswitch,
) -> None:
    edge = softswitch.kamailio()  # no workers needed: Kamailio answers OPTIONS itself
    port = softswitch.settings.sip_port
    me = f"sip:127.0.0.1:{port}"

    assert _send(port, _request("OPTIONS", me, cseq="1 INVITE")).startswith("SIP/2.0 400")
    assert _send(port, _request("OPTIONS", me, cseq="x OPTIONS")).startswith("SIP/2.0 400")
    assert _send(port, _request("OPTIONS", "http://127.0.0.1/")).startswith("SIP/2.0 4")
    bad_length = _request("INVITE", f"sip:12345@127.0.0.1:{port}", body="v=0\r\n", length=900)
    assert _send(port, bad_length).startswith("SIP/2.0 400")  # refused here, never dispatched
    junk = [
        b"\x00\xff" * 700,
        b"INVITE sip:12345@127.0.0.1 SIP/2.0\r\n\r\n",
        b"OPTIONS " + b"a" * 60000 + b" SIP/2.0\r\n\r\n",
        _request("OPTIONS", me).replace(b"Via: SIP/2.0/UDP", b"Via: SIP/9.9/XYZ \x01\x02"),
        _request("INVITE", f"sip:12345@127.0.0.1:{port}")[:97],
    ]
    for message in junk:
        assert not _send(port, message, 0.2).startswith("SIP/2.0 2")

    assert edge.proc.poll() is None, edge.output()
    assert softswitch.options(port).startswith("SIP/2.0 200")


def test_a_flood_from_one_address_is_cut_off_and_service_resumes_after_it(softswitch: Softswitch) -> None:
    softswitch.kamailio()
    port = softswitch.settings.sip_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sent = answered = 0
        # 800 requests as fast as a scanner sends them, far above what a trunk sends. A count,
        # not a duration: on a loaded machine a timed loop sends too few to trip pike.
        for _ in range(800):
            sock.sendto(_request("OPTIONS", f"sip:127.0.0.1:{port}"), ("127.0.0.1", port))
            sent += 1
            answered += _count_ok(sock, wait_s=0.0)
            if sent % 20 == 0:
                time.sleep(0.001)
        answered += _count_ok(sock, wait_s=0.5)
    # The first requests are served, then the source is blocked.
    assert 30 < answered < sent / 2, (sent, answered)

    # Once a 2-s window passes quietly, the same address is served again.
    assert softswitch.wait_for(lambda: softswitch.options(port, 0.3).startswith("SIP/2.0 200"), timeout=8)


def _count_ok(sock: socket.socket, wait_s: float) -> int:
    """200 OKs that arrived on `sock`, waiting up to `wait_s` for stragglers."""
    count = 0
    while select.select([sock], [], [], wait_s)[0]:
        if sock.recv(65535).startswith(b"SIP/2.0 200"):
            count += 1
    return count
