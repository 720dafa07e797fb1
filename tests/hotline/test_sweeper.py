"""A voicemail whose job Redis lost is found in SQL and processed when the worker starts."""

from __future__ import annotations

import time
import wave
from typing import Any

import redis
from rq import Queue
from sqlalchemy.orm import Session, sessionmaker

from hotline import bus, sweeper
from hotline.db import transaction
from hotline.settings import Settings
from recordings import storage
from tickets import jobs
from tickets.models import Ticket


def _voicemail(db: sessionmaker[Session], settings: Settings, call_id: str) -> int:
    with transaction(db) as session:
        recording = storage.register(session, settings.recordings_dir, call_id, jobs.VOICEMAIL_LEG)
        with wave.open(str(settings.recordings_dir / recording.path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(bytes(16000))
        storage.seal(recording, settings.recordings_dir)
        return jobs.register_voicemail(session, call_id, "13900000003").id


def test_a_queued_transcription_is_not_queued_twice(
    db: sessionmaker[Session], settings: Settings, redis_client: redis.Redis
) -> None:
    ticket_id = _voicemail(db, settings, "call-sweep-1")
    queue = Queue("default", connection=bus.connect(settings.effective_redis_url, decode_responses=False))
    assert sweeper.sweep_once(db, queue) == 1
    assert sweeper.sweep_once(db, queue) == 0  # still queued: left alone
    assert queue.job_ids == [sweeper.transcription_job_id(ticket_id)]


def test_the_worker_processes_voicemails_whose_jobs_were_lost(
    db: sessionmaker[Session], settings: Settings, redis_client: redis.Redis, hotline_worker: Any
) -> None:
    ticket_id = _voicemail(db, settings, "call-sweep-2")  # no job was ever queued (Redis was down)
    _worker, log = hotline_worker(
        HOTLINE_VAR_DIR=str(settings.var_dir),
        DATABASE_URL=settings.effective_database_url,
        REDIS_URL=settings.effective_redis_url,
    )
    deadline = time.monotonic() + 60
    content = jobs.PENDING
    while time.monotonic() < deadline and content == jobs.PENDING:
        time.sleep(0.3)
        with db() as session:
            ticket = session.get(Ticket, ticket_id)
            assert ticket is not None
            content = ticket.content
    assert content == jobs.NO_SPEECH_ENGINE, log.read_text()
