"""Recordings: registered before writing, sealed with a checksum, crashed ones repaired and kept."""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import wave
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from recordings import storage
from recordings.models import Recording


def _write_wav(path: Path, seconds: float, rate: int = 8000) -> bytes:
    frames = bytes(int(rate * seconds) * 2)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return path.read_bytes()


def _crash(path: Path) -> None:
    """What a recorder killed mid-call leaves: samples written, header sizes never updated."""
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 4, 36)
    struct.pack_into("<I", data, 40, 0)
    path.write_bytes(bytes(data))


def test_files_go_in_utc_date_folders_one_per_leg() -> None:
    when = dt.datetime(2026, 11, 28, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert storage.relative_path("c0ffee", "caller", when) == "2026/11/27/c0ffee-caller.wav"
    assert storage.relative_path("../../etc", "x/y", when) == "2026/11/27/etc-xy.wav"


def test_a_sealed_recording_has_duration_size_and_checksum(db: sessionmaker[Session], tmp_path: Path) -> None:
    with transaction(db) as session:
        rec = storage.register(session, tmp_path, "call1", "caller")
        assert rec.complete is False
        content = _write_wav(tmp_path / rec.path, 2.5)
        storage.seal(rec, tmp_path)
    with db() as session:
        row = session.scalars(select(Recording)).one()
        assert row.complete and row.duration_s == 2.5 and row.size_bytes == len(content)
        assert row.sha256 == hashlib.sha256(content).hexdigest()


def test_a_recording_left_open_by_a_crash_is_repaired_playable_and_sealed(
    db: sessionmaker[Session], tmp_path: Path
) -> None:
    with transaction(db) as session:
        crashed = storage.register(session, tmp_path, "crashed", "caller")
        live = storage.register(session, tmp_path, "still-talking", "caller")
        lost = storage.register(session, tmp_path, "lost", "caller")
    _write_wav(tmp_path / crashed.path, 3.0)
    _crash(tmp_path / crashed.path)
    _write_wav(tmp_path / live.path, 1.0)
    recovered = storage.recover_incomplete(db, tmp_path, is_live=lambda call_id: call_id == "still-talking")
    assert [r.call_id for r in recovered] == ["crashed"]
    with wave.open(str(tmp_path / crashed.path)) as wav:  # plays again: the header is right
        assert wav.getnframes() == 24000
    with db() as session:
        rows = {r.call_id: r for r in session.scalars(select(Recording))}
    assert rows["crashed"].complete and rows["crashed"].duration_s == 3.0
    assert rows["crashed"].sha256 == storage.file_sha256(tmp_path / crashed.path)
    assert not rows["still-talking"].complete  # its worker still records it
    assert not rows["lost"].complete  # no file: the row says so rather than vanishing
    assert lost.path == rows["lost"].path
