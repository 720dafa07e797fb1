"""Recordings play in the browser for supervisors only, with range requests, and every playback is audited."""

from __future__ import annotations

import wave
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.accounts import AuditEntry, Role, User, hash_password
from hotline.db import transaction
from hotline.settings import Settings
from hotline.web import close_app, create_app
from recordings import storage
from tests.helpers import login

PASSWORD = "listen-pass-phrase"


@pytest.fixture
def app(settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis) -> Iterator[Flask]:
    with transaction(db) as session:
        for name, role in (("lead", Role.SUPERVISOR), ("agent1", Role.AGENT)):
            session.add(
                User(
                    username=name,
                    display_name=name,
                    role=role,
                    password_hash=hash_password(PASSWORD),
                    must_change_password=False,
                )
            )
        recording = storage.register(session, settings.recordings_dir, "call-play", "caller")
        with wave.open(str(settings.recordings_dir / recording.path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(bytes(range(256)) * 250)
        storage.seal(recording, settings.recordings_dir)
    app = create_app(settings)
    yield app
    close_app(app)


def test_a_supervisor_plays_a_recording_with_range_requests_and_it_is_audited(
    app: Flask, db: sessionmaker[Session], settings: Settings
) -> None:
    client = app.test_client()
    login(client, "lead", PASSWORD)
    (listed,) = client.get("/recordings/calls/call-play").get_json()["recordings"]
    assert listed["leg"] == "caller" and listed["complete"] is True
    whole = client.get(listed["url"])
    assert (
        whole.status_code == 200 and whole.data[:4] == b"RIFF" and whole.headers["Accept-Ranges"] == "bytes"
    )
    part = client.get(listed["url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == whole.data[100:200]
    with db() as session:
        plays = session.scalars(select(AuditEntry).where(AuditEntry.action == "recording.play")).all()
    assert len(plays) == 1 and plays[0].detail["call_id"] == "call-play"  # one playback, many ranges


def test_agents_and_strangers_cannot_listen(app: Flask) -> None:
    agent = app.test_client()
    login(agent, "agent1", PASSWORD)
    assert agent.get("/recordings/1/audio").status_code == 403
    assert app.test_client().get("/recordings/1/audio").status_code == 302
    lead = app.test_client()
    login(lead, "lead", PASSWORD)
    assert lead.get("/recordings/999/audio").status_code == 404
