"""`hotline phone`: an agent's softphone registers as a seat, takes the call the ACD offers, and
carries both sides of the conversation (WAV files in and out here, a headset on a PC)."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.orm import Session, sessionmaker

from hotline.settings import Settings
from ivr import kamailio
from tests.ivr.centre import CALLER_HZ, SEAT_HZ, centre  # noqa: F401
from tests.ivr.lab import Phone, event, tone, write_wav
from tests.ivr.test_acd_calls import tone_share

if TYPE_CHECKING:
    from tests.ivr.centre import Centre

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
    secret = lab.root / "8001.password"
    secret.write_text(centre.passwords["8001"] + "\n")
    argv += ["--password-file", str(secret), "--server", f"127.0.0.1:{lab.settings.sip_port}"]
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
    caller.heard()
    assert tone_share(caller.record, SEAT_HZ) > 0.5


@pytest.fixture
def pulse_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private PulseAudio with a null sink: its monitor is the default input, a real loopback."""
    if shutil.which("pulseaudio") is None:
        pytest.skip("PulseAudio (Debian pulseaudio, libasound2-plugins) is not installed")
    run = Path(tempfile.mkdtemp(prefix="pulse-"))  # short: a unix socket path holds 107 bytes
    socket_path = run / "native"
    env = {**os.environ, "HOME": str(tmp_path), "PULSE_RUNTIME_PATH": str(run)}
    argv = ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit"]
    native = f"module-native-protocol-unix socket={socket_path} auth-anonymous=1"
    argv += ["-L", "module-null-sink", "-L", native]
    with (tmp_path / "pulseaudio.log").open("wb") as log:
        server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.05)
        assert socket_path.exists(), (tmp_path / "pulseaudio.log").read_text()
        yield {"PULSE_SERVER": f"unix:{socket_path}", "HOME": str(tmp_path)}
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(run, ignore_errors=True)


def test_hotline_phone_carries_the_call_through_the_sound_devices(
    pulse_server: dict[str, str], ports: Callable[[int], int], tmp_path: Path
) -> None:
    """The headset is PulseAudio's null sink and its monitor: what the agent hears comes back as
    what the agent says, so the caller hears its own voice only if audio went all the way round."""
    port = ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(pulse_server, HOTLINE_VAR_DIR=str(tmp_path / "var"))
    argv = [sys.executable, "-m", "hotline", "phone", "--extension", "1001", "--password", "unused"]
    argv += ["--no-register", "--port", str(port), "--rtp-port", str(ports(10))]
    agent = HotlinePhone(argv, env, tmp_path / "unused.wav")
    caller = Phone(ports(1), ports(10), "13800000001", tmp_path / "caller-heard.wav")
    try:
        caller.call(f"sip:1001@127.0.0.1:{port}")
        assert agent.expect("incoming").startswith("incoming")
        caller.send(f"play {write_wav(tmp_path / 'caller.wav', tone(2.0, CALLER_HZ))}")
        time.sleep(3.0)  # the voice goes round: network, speaker, the sink's monitor, microphone
        caller.send("hangup")
        caller.heard()
        assert agent.expect("ended").startswith("ended")
    finally:
        caller.quit()
        agent.quit()
    assert tone_share(caller.record, CALLER_HZ) > 0.5
