"""Recording files: where they go, registering them, sealing them, and repairing crashed ones.

A recording is registered (a row with `complete=False`) before the first byte is written, and
sealed (duration, size, sha256, `complete=True`) after the recorder closes. A worker that dies
mid-call leaves the row unsealed; `recover_incomplete` later repairs the WAV header (a crashed
recorder never wrote the final sizes) so the file plays, and seals it with a note. So no
recording is ever half-registered: a file without a row cannot happen, and a row without a
sealed file says so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction, utcnow
from recordings.models import Recording

WAV_HEADER_MIN = 44


class RecordingError(Exception):
    """A recording file is missing or not a WAV file we can read."""


def relative_path(call_id: str, leg: str, when: dt.datetime) -> str:
    """Date folders (UTC) and one file per leg: 2026/11/27/<call_id>-<leg>.wav."""
    safe_leg = "".join(c for c in leg if c.isalnum() or c in "-_") or "leg"
    safe_call = "".join(c for c in call_id if c.isalnum() or c in "-_")
    if not safe_call:
        raise ValueError(f"call id {call_id!r} has no usable characters")
    day = when.astimezone(dt.UTC)
    return str(PurePosixPath(f"{day:%Y}", f"{day:%m}", f"{day:%d}", f"{safe_call}-{safe_leg}.wav"))


def register(
    session: Session, root: Path, call_id: str, leg: str, when: dt.datetime | None = None
) -> Recording:
    """Create the row (incomplete) and the folder, before the recorder writes the file."""
    when = when or utcnow()
    rel = relative_path(call_id, leg, when)
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    recording = Recording(call_id=call_id, leg=leg, path=rel, started_at=when, complete=False)
    session.add(recording)
    session.flush()
    return recording


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _data_chunk(header: bytes) -> tuple[int, int, int]:
    """(offset of the data chunk's size field, byte rate, offset of the first sample)."""
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        raise RecordingError("not a RIFF/WAVE file")
    pos, byte_rate = 12, 0
    while pos + 8 <= len(header):
        chunk_id, size = header[pos : pos + 4], struct.unpack_from("<I", header, pos + 4)[0]
        if chunk_id == b"fmt ":
            byte_rate = struct.unpack_from("<I", header, pos + 16)[0]
        if chunk_id == b"data":
            if not byte_rate:
                raise RecordingError("WAV data chunk before its format chunk")
            return pos + 4, byte_rate, pos + 8
        pos += 8 + size + (size & 1)
    raise RecordingError("WAV file without a data chunk")


def repair_wav(path: Path) -> bool:
    """Make the RIFF and data sizes match the file's length; True if anything changed."""
    with path.open("r+b") as f:
        header = f.read(4096)
        size_at, _rate, data_at = _data_chunk(header)
        length = f.seek(0, 2)
        riff_size, data_size = length - 8, max(0, length - data_at)
        if (
            struct.unpack_from("<I", header, 4)[0] == riff_size
            and struct.unpack_from("<I", header, size_at)[0] == data_size
        ):
            return False
        f.seek(4)
        f.write(struct.pack("<I", riff_size))
        f.seek(size_at)
        f.write(struct.pack("<I", data_size))
    return True


def wav_duration(path: Path) -> float:
    with path.open("rb") as f:
        header = f.read(4096)
        size_at, byte_rate, data_at = _data_chunk(header)
        length = f.seek(0, 2)
    return max(0, length - data_at) / byte_rate


def seal(recording: Recording, root: Path) -> Recording:
    """Fill in duration, size and checksum of a closed recording and mark it complete."""
    path = root / recording.path
    if not path.exists():
        raise RecordingError(f"recording file {path} is missing")
    repair_wav(path)
    recording.duration_s = round(wav_duration(path), 3)
    recording.size_bytes = path.stat().st_size
    recording.sha256 = file_sha256(path)
    recording.complete = True
    return recording


def recover_incomplete(
    factory: sessionmaker[Session], root: Path, is_live: Callable[[str], bool] = lambda _call_id: False
) -> list[Recording]:
    """Seal the recordings a crashed worker left open (calls no longer live); returns them."""
    recovered: list[Recording] = []
    with transaction(factory) as session:
        rows: Iterable[Recording] = session.scalars(select(Recording).where(Recording.complete.is_(False)))
        for recording in rows:
            if is_live(recording.call_id):
                continue
            try:
                seal(recording, root)
            except RecordingError:
                continue  # the row stays incomplete: visibly so, for an operator to look at
            recovered.append(recording)
    return recovered
