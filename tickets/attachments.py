"""Reply attachments: checked for size, type and completeness, hashed, stored once by sha256.

Files are received into `attachments/tmp/` first (written, fsynced, checked), so a bad file
stops the reply before anything is recorded. Accepted files move to `attachments/ab/abcd...`
(named by their sha256) before the transaction that records them commits: a crash can leave an
unreferenced file behind, never a record without its file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy.orm import Session

from tickets.models import Attachment

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_FILES = 5
_CHUNK = 64 * 1024
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP = b"PK\x03\x04"
# extension -> (content type, leading bytes, bytes a complete file ends with or holds near its end)
TYPES: dict[str, tuple[str, bytes, bytes]] = {
    ".jpg": ("image/jpeg", b"\xff\xd8\xff", b"\xff\xd9"),
    ".jpeg": ("image/jpeg", b"\xff\xd8\xff", b"\xff\xd9"),
    ".png": ("image/png", b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"),
    ".pdf": ("application/pdf", b"%PDF-", b"%%EOF"),
    ".doc": ("application/msword", _OLE, b""),
    ".xls": ("application/vnd.ms-excel", _OLE, b""),
    ".docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", _ZIP, b"PK\x05\x06"),
    ".xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _ZIP, b"PK\x05\x06"),
}
ALLOWED_LABEL = "JPG、PNG、PDF、Word、Excel"
# A ZIP's end record sits within its last 64 KiB (the comment) plus 22 bytes.
_TAIL = 65 * 1024


class AttachmentError(Exception):
    """A file that cannot be accepted; the message (Chinese) names it and says why."""


@dataclass(frozen=True)
class Received:
    filename: str
    content_type: str
    size: int
    sha256: str
    tmp: Path


def clean_filename(filename: str) -> str:
    """The name without folders or control characters, at most 120 characters."""
    name = re.split(r"[\\/]", filename)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip() or "附件"
    if len(name) > 120:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem[: 119 - len(ext)]}.{ext}" if dot and len(ext) <= 10 else name[:120]
    return name


def receive(stream: IO[bytes], filename: str, root: Path, max_bytes: int = MAX_FILE_BYTES) -> Received:
    """Copy one upload into `root/tmp`, checking it on the way; `AttachmentError` if it is refused."""
    name = clean_filename(filename)
    kind = TYPES.get(Path(name).suffix.lower())
    if kind is None:
        raise AttachmentError(f"“{name}”的文件类型不允许，仅支持 {ALLOWED_LABEL}")
    content_type, head, tail = kind
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    tmp = root / "tmp" / uuid.uuid4().hex
    digest, size = hashlib.sha256(), 0
    try:
        with tmp.open("wb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise AttachmentError(f"“{name}”超过 {max_bytes // (1024 * 1024)} MB 的大小上限")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise AttachmentError(f"“{name}”是空文件或上传不完整，请重新选择")
        with tmp.open("rb") as done:
            start = done.read(len(head))
            done.seek(max(size - _TAIL, 0))
            end = done.read()
        # A ZIP's end record may sit up to 64 KiB from its end; the others end within a few bytes.
        window = end if head == _ZIP else end[-1024:]
        if not start.startswith(head) or tail not in window:
            raise AttachmentError(f"“{name}”的内容与文件类型不符或文件不完整（可能已损坏），请检查后重新上传")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Received(name, content_type, size, digest.hexdigest(), tmp)


def discard(received: Iterable[Received]) -> None:
    for item in received:
        item.tmp.unlink(missing_ok=True)


def store(
    session: Session,
    received: Iterable[Received],
    root: Path,
    *,
    ticket_id: int,
    department_id: int | None,
    event_id: int | None,
    uploaded_by_id: int | None,
    now: dt.datetime,
) -> list[Attachment]:
    """Move received files to their content address and record them in the session's transaction."""
    stored = []
    for item in received:
        final = root / item.sha256[:2] / item.sha256
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            item.tmp.unlink(missing_ok=True)  # the same content is kept once
        else:
            os.replace(item.tmp, final)
            _fsync_dir(final.parent)
        attachment = Attachment(
            ticket_id=ticket_id,
            department_id=department_id,
            event_id=event_id,
            filename=item.filename,
            content_type=item.content_type,
            size=item.size,
            sha256=item.sha256,
            path=f"{item.sha256[:2]}/{item.sha256}",
            uploaded_by_id=uploaded_by_id,
            uploaded_at=now,
        )
        session.add(attachment)
        stored.append(attachment)
    session.flush()
    return stored


def file_of(attachment: Attachment, root: Path) -> Path:
    return root / attachment.path


def size_label(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB" if size >= 1024 * 1024 else f"{max(size // 1024, 1)} KB"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
