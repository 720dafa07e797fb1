"""Prompt administration: the catalog listed, audio played, recordings uploaded, checked and kept."""

from __future__ import annotations

import math
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.accounts import AuditEntry, Role
from hotline.settings import Settings
from hotline.web import close_app, create_app
from tests.helpers import logged_in


def tone(path: Path, rate: int, channels: int, seconds: float = 1.0) -> bytes:
    """A 440 Hz WAV file (16-bit) at `rate` Hz with `channels` channels; its bytes."""
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / rate))) * channels
        for n in range(int(rate * seconds))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path.read_bytes()


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    root = tmp_path / "voice-prompts"
    (root / "audio" / "zh").mkdir(parents=True)
    (root / "catalog.toml").write_text(
        '[prompts]\ngreeting = "您好，这里是12345热线。"\ngoodbye = "再见。"\n'
    )
    tone(root / "audio" / "zh" / "greeting.wav", 8000, 1, 0.5)
    return root


@pytest.fixture
def admin(
    settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis, prompts: Path
) -> Iterator[tuple[Flask, FlaskClient, str]]:
    app = create_app(settings.model_copy(update={"prompts_dir": prompts}))
    client, token = logged_in(app, db, "root", Role.ADMIN)
    yield app, client, token
    close_app(app)


def test_the_catalog_is_listed_and_the_current_audio_plays_in_the_page(
    admin: tuple[Flask, FlaskClient, str], prompts: Path
) -> None:
    _app, client, _token = admin
    page = client.get("/admin/prompts/").get_data(as_text=True)
    assert "您好，这里是12345热线。" in page and 'src="/admin/prompts/greeting.wav"' in page
    assert "尚未生成" in page  # goodbye has no audio yet
    with client.get("/admin/prompts/greeting.wav") as whole:
        assert whole.status_code == 200 and whole.mimetype == "audio/wav"
        assert whole.headers["Cache-Control"] == "no-store"
    with client.get("/admin/prompts/greeting.wav", headers={"Range": "bytes=0-43"}) as part:
        assert part.status_code == 206 and part.get_data()[:4] == b"RIFF"
    assert client.get("/admin/prompts/goodbye.wav").status_code == 404
    assert client.get("/admin/prompts/..%2Fcatalog.wav").status_code == 404


def test_an_upload_replaces_the_audio_and_keeps_the_old_file_with_a_trace(
    admin: tuple[Flask, FlaskClient, str], prompts: Path, db: sessionmaker[Session], tmp_path: Path
) -> None:
    _app, client, token = admin
    audio = prompts / "audio" / "zh"
    old = (audio / "greeting.wav").read_bytes()
    recorded = tone(tmp_path / "studio.wav", 44100, 2, 1.0)  # a studio recording: converted
    done = client.post(
        "/admin/prompts/greeting",
        data={"audio": (tmp_path.joinpath("studio.wav").open("rb"), "studio.wav"), "csrf_token": token},
        follow_redirects=True,
    )
    assert "已替换为上传的录音（1.0 秒）" in done.get_data(as_text=True)
    with wave.open(str(audio / "greeting.wav"), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    assert (audio / "greeting.wav").read_bytes() != recorded
    (kept,) = (audio / "replaced").iterdir()
    assert kept.name.startswith("greeting-") and kept.read_bytes() == old
    with db() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "prompt.replace")).one()
    assert entry.target_id == "greeting" and entry.detail["archived"].endswith(kept.name)


def test_a_file_that_is_not_a_wav_recording_is_refused_and_changes_nothing(
    admin: tuple[Flask, FlaskClient, str], prompts: Path, tmp_path: Path
) -> None:
    _app, client, token = admin
    before = (prompts / "audio" / "zh" / "greeting.wav").read_bytes()
    fake = tmp_path / "notes.wav"
    fake.write_text("这不是录音")
    refused = client.post(
        "/admin/prompts/greeting",
        data={"audio": (fake.open("rb"), "notes.wav"), "csrf_token": token},
        follow_redirects=True,
    )
    assert "未更新：请上传 WAV 格式的录音文件" in refused.get_data(as_text=True)
    assert (prompts / "audio" / "zh" / "greeting.wav").read_bytes() == before
    assert not (prompts / "audio" / "zh" / "replaced").exists()
    nothing = client.post("/admin/prompts/greeting", data={"csrf_token": token}, follow_redirects=True)
    assert "请选择要上传的录音文件" in nothing.get_data(as_text=True)
    assert client.post("/admin/prompts/unknown", data={"csrf_token": token}).status_code == 404
    forged = client.post("/admin/prompts/greeting", data={"audio": (fake.open("rb"), "x.wav")})
    assert forged.status_code == 400


def test_an_oversized_upload_is_cut_off_with_a_clear_message(
    admin: tuple[Flask, FlaskClient, str], prompts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_desk import admin_prompts

    monkeypatch.setattr(admin_prompts, "MAX_BYTES", 1024)  # instead of sending 20 MB
    _app, client, token = admin
    before = (prompts / "audio" / "zh" / "greeting.wav").read_bytes()
    big = tmp_path / "long.wav"
    tone(big, 8000, 1, 10.0)  # 160 kB
    refused = client.post(
        "/admin/prompts/greeting",
        data={"audio": (big.open("rb"), "long.wav"), "csrf_token": token},
        follow_redirects=True,
    )
    assert "文件过大" in refused.get_data(as_text=True)
    assert (prompts / "audio" / "zh" / "greeting.wav").read_bytes() == before
