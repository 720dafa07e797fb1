"""`hotline phone`: an agent's softphone registers as a seat, takes the call the ACD offers, and
carries both sides of the conversation (WAV files in and out here, a headset on a PC)."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.orm import Session, sessionmaker

from hotline.settings import Settings
from ivr import kamailio
from tests.ivr.lab import Phone, event, tone, write_wav
from tests.ivr.test_acd_calls import CALLER_HZ, SEAT_HZ, centre, tone_share  # noqa: F401

if TYPE_CHECKING:
    from tests.ivr.test_acd_calls import Centre

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(kamailio.find_binary(Settings()) is None, reason="kamailio is not installed"),
]


class HotlinePhone(Phone):
    """`hotline phone` in its own process, read line by line like the test phone."""

    def __init__(self, argv: list[str], env: dict[str, str], record: Path) -> None:
        self.record = record
        self.log: list[str] = []
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.expect("ready")


def test_hotline_phone_registers_as_a_seat_and_carries_the_call_through_wav_files(
    centre: Centre,  # noqa: F811
    db: sessionmaker[Session],
) -> None:
    lab = centre.softswitch
    voice = write_wav(lab.root / "agent-voice.wav", tone(1.0, SEAT_HZ))
    heard = lab.root / "agent-heard.wav"
    centre.acd.upsert_seat("8001", {"general": 1})
    argv = [sys.executable, "-m", "hotline", "phone", "--extension", "8001"]
    argv += ["--password", centre.passwords["8001"], "--server", f"127.0.0.1:{lab.settings.sip_port}"]
    argv += ["--port", str(lab.ports(1)), "--rtp-port", str(lab.ports(10))]
    argv += ["--wav-in", str(voice), "--wav-out", str(heard)]
    agent = HotlinePhone(argv, lab.env, heard)
    lab.phones.append(agent)
    assert agent.expect("registered", timeout=10) == "registered 200"
    assert lab.wait_for(lambda: centre.acd.seat("8001").registered, timeout=10)
    centre.ready("8001")

    caller, call_id = centre.caller("13800000001")
    assert event(lab, "call.answered", timeout=15, call_id=call_id)["seat"] == "8001"
    assert agent.expect("incoming").startswith("incoming")
    caller.send(f"play {centre.voices / 'caller.wav'}")
    lab.wait_for(lambda: False, timeout=2.5)  # they talk
    caller.send("hangup")
    assert agent.expect("ended").startswith("ended")
    assert agent.expect("closed") == f"closed {heard}"

    # The agent heard the caller, and the caller heard the agent.
    assert tone_share(heard, CALLER_HZ) > 0.5
    caller.expect("closed")
    assert tone_share(caller.record, SEAT_HZ) > 0.5
