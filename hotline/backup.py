"""Backups (数据异地备份): a consistent snapshot of the database and recordings, checked by sha256.

A backup is a folder: `manifest.json`, the database (`database.sqlite3` or `database.pgdump`) and
`recordings/` as laid out under `settings.recordings_dir`. It is built under a hidden sibling name
and renamed into place after its manifest is written, so a folder with a manifest is complete.
See docs/backup.md for the procedure and the guarantees.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import exists, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from hotline import migrate
from hotline.db import SQLITE_BUSY_TIMEOUT_MS, make_engine, utcnow
from hotline.models import Base
from hotline.settings import Settings

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


def create(settings: Settings, dest: Path) -> Manifest:
    """Write a backup of the database and recordings to the new folder `dest`; safe while the hotline runs.

    The database is snapshotted first, then the recordings are copied, so every recording a row of
    the snapshot names is in the backup (files newer than the snapshot may be too).
    """
    if dest.exists():
        raise BackupError(f"{dest} already exists; a backup is written to a new folder")
    if dest.resolve().is_relative_to(settings.recordings_dir.resolve()):
        raise BackupError(f"{dest} is inside the recordings folder it would copy")
    url = settings.effective_database_url
    backend = _backend(url)
    revision = _live_revision(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        database = DATABASE_FILES[backend]
        if backend == "sqlite":
            _dump_sqlite(_sqlite_path(url), staging / database)
        else:
            _dump_postgresql(url, staging / database)
        files = [BackupFile(database, *_hash_file(staging / database))]
        files += _copy_recordings(settings.recordings_dir, staging / RECORDINGS)
        manifest = _sealed(utcnow(), backend, revision, database, tuple(files))
        # Last, so that a manifest is only ever found beside the complete set of files.
        _fsync_tree(staging)
        _write_synced(staging / MANIFEST, _manifest_json(manifest))
        _fsync_dir(staging)
        if dest.exists():
            raise BackupError(f"{dest} appeared while the backup was being written")
        staging.rename(dest)
        _fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _live_revision(url: str) -> str | None:
    if _backend(url) == "sqlite" and not _sqlite_path(url).is_file():
        raise BackupError(f"no database at {_sqlite_path(url)}")
    engine = make_engine(url)
    try:
        return migrate.current_revision(engine)
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot read the database: {exc}") from exc
    finally:
        engine.dispose()


def _dump_sqlite(source: Path, target: Path) -> None:
    with (
        closing(sqlite3.connect(source, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        # One step (pages=-1) reads one WAL snapshot; writers in other processes carry on meanwhile.
        src.backup(dst, pages=-1)
        # The copy inherits WAL mode; a rollback-journal file stays one self-contained file.
        dst.execute("PRAGMA journal_mode=DELETE")
    _fsync_file(target)


def _dump_postgresql(url: str, target: Path) -> None:
    # pg_dump reads one repeatable-read snapshot, so concurrent writers do not tear the dump.
    conninfo, env = _libpq(url)
    _run(["pg_dump", "--format=custom", "--file", str(target), "--dbname", conninfo], env)
    _fsync_file(target)


def _copy_recordings(source: Path, target: Path) -> list[BackupFile]:
    if not source.is_dir():
        return []
    files: list[BackupFile] = []
    for path in sorted(source.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        relative = path.relative_to(source).as_posix()
        out = target / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Hashing the bytes as they are copied: a file still growing is described as copied.
            size, digest = _copy_hashed(path, out)
        except FileNotFoundError:
            continue  # removed by retention since the listing; its row is gone or going too
        files.append(BackupFile(f"{RECORDINGS}/{relative}", size, digest))
    return files


# Verifying -----------------------------------------------------------------------------------


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
        size, digest = _hash_file(src / entry.path)
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
    if _digest(document) != claimed:
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


def restore(
    settings: Settings, src: Path, *, force: bool = False, expected_sha256: str | None = None
) -> Manifest:
    """Replace the database and recordings of `settings` with the verified backup at `src`.

    Stop every hotline process first. Refuses a damaged backup, one of the other backend, one
    made by a newer schema, and (unless `force`) a target that already holds data.
    """
    manifest = verify(src, expected_sha256=expected_sha256)
    url = settings.effective_database_url
    backend = _backend(url)
    if manifest.backend != backend:
        raise BackupError(
            f"{src} is a {manifest.backend} backup and restores only onto {manifest.backend}, "
            f"but this hotline uses {backend}"
        )
    known = {script.revision for script in ScriptDirectory(str(migrate.MIGRATIONS)).walk_revisions()}
    if manifest.schema_revision is not None and manifest.schema_revision not in known:
        raise BackupError(
            f"{src} has schema revision {manifest.schema_revision}, unknown to this "
            "hotline version: restore it with the version that made it, or a newer one"
        )
    recordings_dir = settings.recordings_dir.resolve()
    if not force:
        if _database_holds_data(url):
            raise BackupError("the target database already holds data; restore with force to replace it")
        if recordings_dir.is_dir() and any(recordings_dir.iterdir()):
            raise BackupError(f"{recordings_dir} is not empty; restore with force to replace it")

    staged = _stage_recordings(src, manifest, recordings_dir)
    try:
        if backend == "sqlite":
            _restore_sqlite(src, manifest, _sqlite_path(url))
        else:
            _restore_postgresql(src / manifest.database, url)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    _swap_in(staged, recordings_dir)

    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    return manifest


def _database_holds_data(url: str) -> bool:
    if _backend(url) == "sqlite" and not _sqlite_path(url).is_file():
        return False
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            present = set(inspect(connection).get_table_names())
            return any(
                connection.scalar(select(exists().select_from(table)))
                for table in Base.metadata.sorted_tables
                if table.name in present
            )
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot read the target database: {exc}") from exc
    finally:
        engine.dispose()


def _stage_recordings(src: Path, manifest: Manifest, recordings_dir: Path) -> Path:
    recordings_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = recordings_dir.with_name(f".{recordings_dir.name}.restore-{uuid.uuid4().hex[:8]}")
    staged.mkdir()
    try:
        for entry in manifest.recordings:
            out = staged.joinpath(*PurePosixPath(entry.path).parts[1:])
            out.parent.mkdir(parents=True, exist_ok=True)
            _copy_checked(src, entry, out)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return staged


def _swap_in(staged: Path, recordings_dir: Path) -> None:
    old = recordings_dir.with_name(f".{recordings_dir.name}.old-{uuid.uuid4().hex[:8]}")
    had_old = recordings_dir.exists()
    if had_old:
        recordings_dir.rename(old)
    staged.rename(recordings_dir)
    _fsync_dir(recordings_dir.parent)
    if had_old:
        shutil.rmtree(old)


def _restore_sqlite(src: Path, manifest: Manifest, target: Path) -> None:
    entry = next(f for f in manifest.files if f.path == manifest.database)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.restore-{uuid.uuid4().hex[:8]}")
    try:
        _copy_checked(src, entry, temporary)
        # A WAL left by the old database would be replayed onto the new one and corrupt it.
        for suffix in ("-wal", "-shm", "-journal"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        os.replace(temporary, target)
        _fsync_dir(target.parent)
    finally:
        temporary.unlink(missing_ok=True)


def _restore_postgresql(dump: Path, url: str) -> None:
    conninfo, env = _libpq(url)
    # One transaction: a failed restore leaves the target database as it was.
    command = [
        "pg_restore",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
    ]
    _run([*command, "--dbname", conninfo, str(dump)], env)


# Helpers -------------------------------------------------------------------------------------


def _backend(url: str) -> str:
    backend = make_url(url).get_backend_name()
    if backend not in DATABASE_FILES:
        raise BackupError(f"cannot back up a {backend} database; sqlite and postgresql are supported")
    return backend


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url} is not a SQLite file")
    return Path(database)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """`postgresql+psycopg://u:pw@h/db` -> (`postgresql://u@h/db`, env with PGPASSWORD)."""
    parsed = make_url(url)
    env = dict(os.environ)
    # In the environment, not the command line, where `ps` would show it to every local user.
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    conninfo = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return conninfo, env


def _run(command: list[str], env: dict[str, str]) -> None:
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BackupError(f"{command[0]} not found: install the PostgreSQL client tools") from None
    if result.returncode != 0:
        raise BackupError(f"{command[0]} failed (exit {result.returncode}): {result.stderr.strip()}")


def _sealed(
    created_at: dt.datetime, backend: str, revision: str | None, database: str, files: tuple[BackupFile, ...]
) -> Manifest:
    draft = Manifest(created_at, backend, revision, database, files, "")
    return Manifest(created_at, backend, revision, database, files, _digest(draft.body()))


def _digest(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _manifest_json(manifest: Manifest) -> bytes:
    document = manifest.body() | {"sha256": manifest.sha256}
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _copy_checked(src: Path, entry: BackupFile, out: Path) -> None:
    # Verified moments ago, but checked again on the bytes actually restored.
    if _copy_hashed(src / entry.path, out) != (entry.size, entry.sha256):
        raise BackupError(f"{src}: file {entry.path} changed while it was being restored")


def _copy_hashed(source: Path, target: Path) -> tuple[int, str]:
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


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def _fsync_tree(root: Path) -> None:
    # The names of the copied files are durable only once their folders are synced too.
    for folder, _dirs, _files in os.walk(root):
        _fsync_dir(Path(folder))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
