"""Bad input and bad luck: junk, unusable offers, key floods, callers who hang up at once, 200 calls in a
row, and a worker killed mid-call. The softswitch keeps running and every record ends complete."""

from __future__ import annotations

import signal
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Call, Disposition
from acd.store import AcdStore
from hotline.settings import Settings
from ivr import kamailio
from recordings.models import Recording
from recordings.storage import file_sha256, wav_duration
from tests.ivr.lab import CALLER, closed, event, info_flood_scenario, recordings, speak_korean
from tickets.models import Channel, Ticket

if TYPE_CHECKING:
    from tests.ivr.conftest import Softswitch

pytestmark = pytest.mark.sip

SCENARIOS = Path(__file__).parent / "scenarios"


def _send(port: int, message: bytes) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        sock.sendto(message, ("127.0.0.1", port))
        try:
            return sock.recv(65535).split(b"\r\n", 1)[0].decode(errors="replace")
        except TimeoutError:
            return ""


def _count(db: sessionmaker[Session], *where: object) -> int:
    with db() as session:
        return int(session.scalar(select(func.count()).select_from(Call).where(*where)) or 0)


def assert_idle(softswitch: Softswitch, name: str = "sip-worker-0") -> None:
    """The worker's heartbeat soon shows no leg and no pjsua2 wrapper alive.

    Players and recorders are destroyed a quarter second after their call (ivr.sip.edge): a
    leak is what is still there after a few seconds.
    """

    def beat() -> bool:
        found = softswitch.workers_alive().get(name, {})
        counts = [found.get(k) for k in ("legs", "calls", "players", "recorders")]
        return counts == [0, 0, 0, 0]

    assert softswitch.wait_for(beat, timeout=5), softswitch.workers_alive()


def test_junk_and_an_offer_without_a_usable_codec_are_refused_and_leave_no_trace(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session]
) -> None:
    softswitch.worker(0, public=True, env={"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir)})
    port = softswitch.settings.sip_port
    junk = [
        b"\x00\xff" * 700,
        b"INVITE sip:12345@127.0.0.1 SIP/2.0\r\n\r\n",
        b"OPTIONS " + b"a" * 60000 + b" SIP/2.0\r\n\r\n",
        f"INVITE sip:12345@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{uuid.uuid4().hex}\r\n"
        "CSeq: x INVITE\r\nContent-Length: 900\r\n\r\nv=0".encode(),
    ]
    for message in junk:
        assert not _send(port, message).startswith("SIP/2.0 2")
    no_codec = softswitch.sipp(port, scenario="no_codec.xml")
    assert no_codec.wait() == 0, no_codec.output()  # 488 Not Acceptable Here

    caller = softswitch.sipp(port, talk_ms=300)
    assert caller.wait() == 0, caller.output()
    assert softswitch.wait_for(lambda: _count(db, Call.ended_at.is_not(None)) == 1)
    assert len(softswitch.events("call.arrived")) == 1 and _count(db) == 1
    assert_idle(softswitch)


def test_a_flood_of_keys_is_absorbed_and_the_caller_still_reaches_a_person(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session], tmp_path: Path
) -> None:
    softswitch.worker(0, public=True, env={"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir)})
    scenario = info_flood_scenario(SCENARIOS / "info_flood.xml.in", tmp_path / "flood.xml", "5" * 100)
    flood = softswitch.sipp(softswitch.settings.sip_port, scenario=str(scenario), talk_ms=1000)
    assert flood.wait() == 0, flood.output()  # 100 INFOs in a fraction of a second, each answered 200

    (ended,) = softswitch.wait_for(lambda: softswitch.events("call.ended"))
    row = closed(db, softswitch, ended.data["call_id"])
    # Wrong keys up to the node's retries, then a person; the rest is ignored, not stored.
    assert row.disposition is Disposition.ABANDONED_QUEUE and row.queue == "general"
    assert len(row.ivr_path) < 12, row.ivr_path
    assert AcdStore(softswitch.redis).waiting("general") == []
    assert softswitch.options(softswitch.settings.sip_port).startswith("SIP/2.0 200")
    assert_idle(softswitch)


def test_200_callers_in_a_row_hanging_up_during_the_greeting_leave_200_closed_records_and_no_leaks(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session]
) -> None:
    worker = softswitch.worker(0, public=True, env={"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir)})
    callers = softswitch.sipp(softswitch.settings.sip_port, calls=200, concurrent=1, talk_ms=10, rate=200)
    assert callers.wait(timeout=60) == 0, callers.output()

    assert softswitch.wait_for(lambda: _count(db, Call.ended_at.is_not(None)) == 200, timeout=20)
    assert _count(db, Call.disposition == Disposition.ABANDONED_IVR) == 200
    with db() as session:
        # Nobody stayed past the recording notice: nothing was recorded, nothing half-registered.
        assert session.scalar(select(func.count()).select_from(Recording)) == 0
    assert len(softswitch.events("call.ended")) == 200
    assert_idle(softswitch)  # no call wrapper, player or recorder leaked
    assert worker.proc.poll() is None
    assert "Traceback" not in worker.output()


@pytest.mark.skipif(kamailio.find_binary(Settings()) is None, reason="kamailio is not installed")
def test_a_worker_killed_mid_message_closes_its_records_when_back_and_the_other_worker_carries_on(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session], tmp_path: Path
) -> None:
    env = {"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir)}
    workers = [softswitch.worker(i, env=env) for i in range(2)]
    softswitch.kamailio(workers=2)
    message = speak_korean("가로등이 고장났어요 빨리 고쳐 주세요 감사합니다", tmp_path / "message.wav")

    phone = softswitch.phone(CALLER)
    phone.call(softswitch.uri())
    phone.send("dtmf 9")
    arrived = event(softswitch, "call.arrived", caller=CALLER)
    victim = int(arrived["worker"].rsplit("-", 1)[1])
    event(softswitch, "voicemail.recording", call_id=arrived["call_id"])
    phone.send(f"play {message}")
    other = softswitch.sipp(softswitch.settings.sip_port, talk_ms=4000, caller="13900139000")
    bystander = event(softswitch, "call.arrived", caller="13900139000")
    assert bystander["worker"] != arrived["worker"]  # round robin: the other worker

    softswitch.wait_for(lambda: False, timeout=1.5)  # part of the message is on disk
    workers[victim].proc.send_signal(signal.SIGKILL)
    workers[victim].proc.wait()
    assert other.wait() == 0, other.output()  # the other worker's caller never noticed

    assert closed_or_none(db, arrived["call_id"]) is None  # nothing closes it but its worker
    softswitch.worker(victim, env=env)
    row = closed(db, softswitch, arrived["call_id"])
    # The message the caller was leaving is kept as a ticket, sealed and playable.
    assert row.disposition is Disposition.VOICEMAIL
    assert row.ivr_path[-1]["event"] == "worker_lost"
    # Sealed by the restarted worker's recovery, just after it closed the CDR.
    sealed = softswitch.wait_for(
        lambda: (rs := recordings(db, arrived["call_id"])) and all(r.complete for r in rs) and rs
    )
    assert sealed, [(r.path, r.complete) for r in recordings(db, arrived["call_id"])]
    for recording in sealed:
        assert recording.complete, recording.path
        path = softswitch.settings.recordings_dir / recording.path
        assert recording.sha256 == file_sha256(path) and wav_duration(path) > 0.5
    with db() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.call_id == arrived["call_id"]))
        assert ticket is not None and ticket.channel is Channel.VOICEMAIL and ticket.caller_phone == CALLER


def closed_or_none(db: sessionmaker[Session], call_id: str) -> Call | None:
    with db() as session:
        return session.scalar(select(Call).where(Call.call_id == call_id, Call.ended_at.is_not(None)))
