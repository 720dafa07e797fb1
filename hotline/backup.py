"""Backups (数据异地备份): a consistent snapshot of the database and recordings, checked by sha256.

A backup is a folder: `manifest.json`, the database (`database.sqlite3` or `database.pgdump`) and
`recordings/` as laid out under `settings.recordings_dir`. It is built under a hidden sibling name
and renamed into place after its manifest is written, so a folder with a manifest is complete.
See docs/backup.md for the procedure and the guarantees.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from contextlib import closing
from pathlib import Path, PurePosixPath

from alembic.script import ScriptDirectory
from sqlalchemy import exists, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from hotline import migrate
from hotline.backup_manifest import (
    DATABASE_FILES,
    MANIFEST,
    RECORDINGS,
    BackupError,
    BackupFile,
    Manifest,
    copy_checked,
    copy_hashed,
    fsync_dir,
    fsync_file,
    fsync_tree,
    hash_file,
    manifest_json,
    read_manifest,
    sealed,
    verify,
    write_synced,
)
from hotline.db import SQLITE_BUSY_TIMEOUT_MS, make_engine, utcnow
from hotline.models import Base
from hotline.settings import Settings

__all__ = ["BackupError", "BackupFile", "Manifest", "create", "read_manifest", "restore", "verify"]


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
        files = [BackupFile(database, *hash_file(staging / database))]
        files += _copy_recordings(settings.recordings_dir, staging / RECORDINGS)
        manifest = sealed(utcnow(), backend, revision, database, tuple(files))
        # Last, so that a manifest is only ever found beside the complete set of files.
        fsync_tree(staging)
        write_synced(staging / MANIFEST, manifest_json(manifest))
        fsync_dir(staging)
        if dest.exists():
            raise BackupError(f"{dest} appeared while the backup was being written")
        staging.rename(dest)
        fsync_dir(dest.parent)
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
    fsync_file(target)


def _dump_postgresql(url: str, target: Path) -> None:
    # pg_dump reads one repeatable-read snapshot, so concurrent writers do not tear the dump.
    conninfo, env = _libpq(url)
    _run(["pg_dump", "--format=custom", "--file", str(target), "--dbname", conninfo], env)
    fsync_file(target)


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
            size, digest = copy_hashed(path, out)
        except FileNotFoundError:
            continue  # removed by retention since the listing; its row is gone or going too
        files.append(BackupFile(f"{RECORDINGS}/{relative}", size, digest))
    return files


# Verifying -----------------------------------------------------------------------------------


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
            copy_checked(src, entry, out)
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
    fsync_dir(recordings_dir.parent)
    if had_old:
        shutil.rmtree(old)


def _restore_sqlite(src: Path, manifest: Manifest, target: Path) -> None:
    entry = next(f for f in manifest.files if f.path == manifest.database)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.restore-{uuid.uuid4().hex[:8]}")
    try:
        copy_checked(src, entry, temporary)
        # A WAL left by the old database would be replayed onto the new one and corrupt it.
        for suffix in ("-wal", "-shm", "-journal"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        os.replace(temporary, target)
        fsync_dir(target.parent)
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
