"""Backup manifests: what a backup holds, its checksums, and checking it (no database work).

A manifest lists every file with its size and sha256 and carries a sha256 of its own body, so a
tampered file, a missing or extra one, and an edited manifest are all refused by `verify`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 1
MANIFEST = "manifest.json"
RECORDINGS = "recordings"
DATABASE_FILES = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BackupError(Exception):
    """A backup cannot be made, is damaged, or cannot be restored here; the message says why."""


@dataclass(frozen=True)
class BackupFile:
    path: str  # relative to the backup folder, with forward slashes
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    created_at: dt.datetime
    backend: str  # "sqlite" or "postgresql": a backup restores onto the same backend only
    schema_revision: str | None
    database: str  # the database file's path among `files`
    files: tuple[BackupFile, ...]
    sha256: str  # of the manifest body: record it elsewhere to detect a rewritten manifest

    @property
    def recordings(self) -> tuple[BackupFile, ...]:
        return tuple(f for f in self.files if f.path != self.database)

    def summary(self) -> str:
        size = sum(f.size for f in self.files)
        return (
            f"{self.backend} database at schema {self.schema_revision or '(none)'}, "
            f"{len(self.recordings)} recording files, {size / 1e6:.1f} MB in all, "
            f"made {self.created_at:%Y-%m-%d %H:%M:%S} UTC; manifest sha256 {self.sha256}"
        )

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "created_at": self.created_at.isoformat(),
            "backend": self.backend,
            "schema_revision": self.schema_revision,
            "database": self.database,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }


# Creating ------------------------------------------------------------------------------------


def verify(src: Path, *, expected_sha256: str | None = None) -> Manifest:
    """Check every file of the backup at `src` against its manifest; raise `BackupError` on the first fault.

    `expected_sha256`, the manifest digest recorded when the backup was made, also catches a
    manifest rewritten together with its checksum.
    """
    manifest = read_manifest(src)
    if expected_sha256 is not None and manifest.sha256 != expected_sha256.lower():
        raise BackupError(f"{src}: manifest sha256 is {manifest.sha256}, expected {expected_sha256}")
    on_disk = {p.relative_to(src).as_posix() for p in src.rglob("*") if not p.is_dir()} - {MANIFEST}
    for entry in manifest.files:
        if entry.path not in on_disk:
            raise BackupError(f"{src}: missing file {entry.path}")
    extra = sorted(on_disk - {entry.path for entry in manifest.files})
    if extra:
        raise BackupError(f"{src}: extra file {extra[0]} is not in the manifest")
    for entry in manifest.files:
        size, digest = hash_file(src / entry.path)
        if (size, digest) != (entry.size, entry.sha256):
            raise BackupError(
                f"{src}: changed file {entry.path}: {size} bytes sha256 {digest}, "
                f"the manifest says {entry.size} bytes sha256 {entry.sha256}"
            )
    return manifest


def read_manifest(src: Path) -> Manifest:
    """The manifest of the backup at `src`, its own checksum checked (the files are not)."""
    try:
        raw = (src / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise BackupError(f"{src}: no {MANIFEST}; not a backup, or one that never finished") from None
    except OSError as exc:
        raise BackupError(f"{src}: cannot read {MANIFEST}: {exc}") from exc
    try:
        document = json.loads(raw)
    except ValueError:
        raise BackupError(f"{src}: {MANIFEST} is not valid JSON (edited or truncated)") from None
    if not isinstance(document, dict) or not isinstance(document.get("sha256"), str):
        raise BackupError(f"{src}: {MANIFEST} has no checksum")
    claimed = document.pop("sha256")
    if digest(document) != claimed:
        raise BackupError(f"{src}: {MANIFEST} was edited: its content does not match its sha256")
    try:
        manifest = _parse(document, claimed)
    except (KeyError, TypeError, ValueError) as exc:
        raise BackupError(f"{src}: {MANIFEST} is not a valid manifest: {exc}") from exc
    return manifest


def _parse(body: Mapping[str, Any], digest: str) -> Manifest:
    if body["format"] != FORMAT:
        raise ValueError(f"format {body['format']!r}; this hotline reads format {FORMAT}")
    backend = body["backend"]
    if backend not in DATABASE_FILES:
        raise ValueError(f"unknown backend {backend!r}")
    revision = body["schema_revision"]
    if revision is not None and not isinstance(revision, str):
        raise ValueError("schema_revision is not a string")
    files: list[BackupFile] = []
    for item in body["files"]:
        path, size, sha256 = item["path"], item["size"], item["sha256"]
        if not (
            isinstance(size, int) and size >= 0 and isinstance(sha256, str) and _SHA256.fullmatch(sha256)
        ):
            raise ValueError(f"bad size or sha256 for {path!r}")
        files.append(BackupFile(_safe_path(path, body["database"]), size, sha256))
    if body["database"] != DATABASE_FILES[backend] or body["database"] not in {f.path for f in files}:
        raise ValueError(f"database file {body['database']!r} is not listed for {backend}")
    if len({f.path for f in files}) != len(files):
        raise ValueError("a file is listed twice")
    created_at = dt.datetime.fromisoformat(body["created_at"])
    return Manifest(created_at, backend, revision, body["database"], tuple(files), digest)


def _safe_path(path: Any, database: str) -> str:
    # Restore writes to the paths a manifest names: none may lead outside the recordings folder.
    if path == database:
        return database
    parts = path.split("/") if isinstance(path, str) else []
    if len(parts) < 2 or parts[0] != RECORDINGS or "\\" in path or {"", ".", ".."} & set(parts):
        raise ValueError(f"path {path!r} is outside the backup's layout")
    return str(path)


# Restoring -----------------------------------------------------------------------------------


def sealed(
    created_at: dt.datetime, backend: str, revision: str | None, database: str, files: tuple[BackupFile, ...]
) -> Manifest:
    draft = Manifest(created_at, backend, revision, database, files, "")
    return Manifest(created_at, backend, revision, database, files, digest(draft.body()))


def digest(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def manifest_json(manifest: Manifest) -> bytes:
    document = manifest.body() | {"sha256": manifest.sha256}
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def copy_checked(src: Path, entry: BackupFile, out: Path) -> None:
    # Verified moments ago, but checked again on the bytes actually restored.
    if copy_hashed(src / entry.path, out) != (entry.size, entry.sha256):
        raise BackupError(f"{src}: file {entry.path} changed while it was being restored")


def copy_hashed(source: Path, target: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as fin, target.open("xb") as fout:
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(source, target)
    return size, digest.hexdigest()


def hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def write_synced(path: Path, data: bytes) -> None:
    with path.open("xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_file(path: Path) -> None:
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def fsync_tree(root: Path) -> None:
    # The names of the copied files are durable only once their folders are synced too.
    for folder, _dirs, _files in os.walk(root):
        fsync_dir(Path(folder))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
