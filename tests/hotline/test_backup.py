"""Backups: create, verify and restore on a real database (SQLite, or PostgreSQL from DATABASE_URL)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Call, Disposition, Seat, SeatEvent
from hotline import backup
from hotline.accounts import AuditEntry, Role, User
from hotline.backup import BackupError
from hotline.db import Base, make_engine, make_session_factory, transaction
from hotline.migrate import upgrade
from hotline.seed import seed_demo
from hotline.settings import Settings, load_settings
from recordings.models import Recording
from tickets.models import Channel, Department, DepartmentKind, Ticket, TicketEvent, TicketStatus

RECORDING_FILES = {
    "2026/11/27/c-0001-caller.wav": os.urandom(48_000),
    "2026/11/27/c-0001-agent.wav": os.urandom(48_000),
    "2026/11/28/留言-0002.wav": os.urandom(9_000),
    "empty.wav": b"",
}


@pytest.fixture
def target(tmp_path: Path, scratch_database_url: str) -> Settings:
    """Settings of a second hotline with an empty database and no recordings yet."""
    return load_settings(
        environ={"HOTLINE_VAR_DIR": str(tmp_path / "target-var"), "DATABASE_URL": scratch_database_url},
        config_file=tmp_path / "absent.toml",
    )


def _with_engine(settings: Settings, work: Callable[[Engine], Any]) -> Any:
    engine = make_engine(settings.effective_database_url)
    try:
        return work(engine)
    finally:
        engine.dispose()


def _rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every hotline table (and the schema revision), in primary-key order."""
    with engine.connect() as conn:
        rows = {
            table.name: [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]
            for table in Base.metadata.sorted_tables
        }
        rows["alembic_version"] = [
            tuple(r) for r in conn.execute(text("SELECT version_num FROM alembic_version"))
        ]
    return rows


def _files(root: Path) -> dict[str, bytes]:
    return (
        {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        if root.exists()
        else {}
    )


def _fill(db: sessionmaker[Session], settings: Settings) -> None:
    """A small day of the hotline: a call, its recordings, a dispatched ticket, seat history."""
    with transaction(db) as session:
        # The seeded bureau when there is one.
        dept = session.scalars(select(Department).where(Department.code == "housing")).first() or Department(
            code="housing", name="市住房和城乡建设局", kind=DepartmentKind.BUREAU
        )
        agent = User(username="agent9", display_name="话务员09", role=Role.AGENT, password_hash="$argon2id$x")
        session.add_all([dept, agent])
        session.flush()
        seat = Seat(
            extension="8009", sip_password="s3cret", skills={"general": 1, "dialect": 1}, agent_id=agent.id
        )
        session.add(seat)
        session.flush()
        session.add(SeatEvent(seat_id=seat.id, agent_id=agent.id, from_state="not_ready", to_state="ready"))
        session.add(
            Call(
                call_id="c-0001",
                caller="13800000000",
                seat_id=seat.id,
                ivr_path=["greeting", "0"],
                disposition=Disposition.ANSWERED,
                survey_score=5,
            )
        )
        ticket = Ticket(
            number="20261127-0001",
            channel=Channel.PHONE,
            caller_phone="13800000000",
            title="小区停水",
            content="钟山区某小区连续两天停水，无人告知。",
            district="钟山区",
            status=TicketStatus.DISPATCHED,
            department_id=dept.id,
            call_id="c-0001",
            created_by_id=agent.id,
        )
        session.add(ticket)
        session.flush()
        session.add(
            TicketEvent(
                ticket_id=ticket.id,
                actor_id=agent.id,
                action="dispatch",
                from_status=TicketStatus.ACCEPTED,
                to_status=TicketStatus.DISPATCHED,
                department_id=dept.id,
                note="派至市住建局",
            )
        )
        for path, data in RECORDING_FILES.items():
            session.add(
                Recording(
                    call_id="c-0001",
                    leg=path.rsplit("-", 1)[-1][:-4],
                    path=path,
                    size_bytes=len(data),
                    complete=True,
                )
            )
            file = settings.recordings_dir / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data)


def _give_target_data(target: Settings) -> dict[str, list[tuple[Any, ...]]]:
    def work(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
        upgrade(engine)
        with transaction(make_session_factory(engine)) as session:
            session.add(Department(code="old", name="旧数据", kind=DepartmentKind.BUREAU))
        return _rows(engine)

    (target.recordings_dir / "old.wav").parent.mkdir(parents=True, exist_ok=True)
    (target.recordings_dir / "old.wav").write_bytes(b"old recording")
    rows: dict[str, list[tuple[Any, ...]]] = _with_engine(target, work)
    return rows


def test_restore_brings_back_every_row_and_recording(
    db: sessionmaker[Session], engine: Engine, settings: Settings, target: Settings, tmp_path: Path
) -> None:
    seed_demo(db)
    _fill(db, settings)
    dest = tmp_path / "backups" / "2026-11-27"

    manifest = backup.create(settings, dest)

    # Nothing half-written is left beside the finished backup.
    assert [p.name for p in dest.parent.iterdir()] == ["2026-11-27"]
    assert len(manifest.recordings) == len(RECORDING_FILES)
    assert backup.verify(dest, expected_sha256=manifest.sha256) == manifest
    assert backup.restore(target, dest) == manifest

    source_rows = _rows(engine)
    assert source_rows["users"] and source_rows["tickets"] and source_rows["recordings"]
    assert _with_engine(target, _rows) == source_rows
    assert _files(target.recordings_dir) == RECORDING_FILES

    # The restored hotline carries on: new rows get fresh ids (PostgreSQL sequences came along).
    def add_ticket(target_engine: Engine) -> int:
        with transaction(make_session_factory(target_engine)) as session:
            ticket = Ticket(number="20261128-0001", channel=Channel.PORTAL, title="路灯不亮")
            session.add(ticket)
            session.flush()
            return ticket.id

    assert _with_engine(target, add_ticket) == max(row[0] for row in source_rows["tickets"]) + 1


def test_create_takes_a_consistent_snapshot_while_others_write(
    db: sessionmaker[Session], engine: Engine, settings: Settings, target: Settings, tmp_path: Path
) -> None:
    _fill(db, settings)
    stop = threading.Event()
    written = threading.Semaphore(0)

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with transaction(db) as session:
                session.add(AuditEntry(action="test_write", target_id=str(n)))
            written.release()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(20):
            assert written.acquire(timeout=10)
        backup.create(settings, tmp_path / "backup")
        for _ in range(20):
            assert written.acquire(timeout=10)
    finally:
        stop.set()
        thread.join()

    backup.restore(target, tmp_path / "backup")

    source, restored = _rows(engine), _with_engine(target, _rows)
    # A snapshot of one instant: a gap-free prefix of what was committed, nothing torn.
    assert 20 <= len(restored["audit_log"]) < len(source["audit_log"])
    assert restored["audit_log"] == source["audit_log"][: len(restored["audit_log"])]
    assert {name: rows for name, rows in restored.items() if name != "audit_log"} == {
        name: rows for name, rows in source.items() if name != "audit_log"
    }


def _change_recording(dest: Path) -> str:
    file = dest / "recordings" / "2026/11/27/c-0001-caller.wav"
    data = bytearray(file.read_bytes())
    data[1000] ^= 0xFF
    file.write_bytes(bytes(data))
    return "recordings/2026/11/27/c-0001-caller.wav"


def _delete_recording(dest: Path) -> str:
    (dest / "recordings" / "2026/11/28/留言-0002.wav").unlink()
    return "recordings/2026/11/28/留言-0002.wav"


def _add_file(dest: Path) -> str:
    (dest / "recordings" / "2026/11/27/planted.wav").write_bytes(b"RIFF")
    return "recordings/2026/11/27/planted.wav"


def _edit_manifest(dest: Path) -> str:
    manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"][0]["size"] += 1
    (dest / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return "manifest.json"


def _unfinished(dest: Path) -> str:
    # What a crash before the last step would leave: everything but the manifest.
    (dest / "manifest.json").unlink()
    return "manifest.json"


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_change_recording, "changed file"),
        (_delete_recording, "missing file"),
        (_add_file, "extra file"),
        (_edit_manifest, "was edited"),
        (_unfinished, "no manifest.json"),
    ],
)
def test_a_damaged_backup_is_refused_and_the_target_left_alone(
    db: sessionmaker[Session],
    settings: Settings,
    target: Settings,
    tmp_path: Path,
    tamper: Callable[[Path], str],
    message: str,
) -> None:
    _fill(db, settings)
    dest = tmp_path / "backup"
    backup.create(settings, dest)
    target_rows = _give_target_data(target)
    target_files = _files(target.recordings_dir)

    name = tamper(dest)

    with pytest.raises(BackupError, match=message) as verified:
        backup.verify(dest)
    assert name in str(verified.value)
    with pytest.raises(BackupError, match=message):
        backup.restore(target, dest, force=True)
    assert _with_engine(target, _rows) == target_rows
    assert _files(target.recordings_dir) == target_files
    assert not [p for p in target.var_dir.iterdir() if p.name.startswith(".")]


def _sealed(body: dict[str, Any]) -> str:
    """A manifest rewritten with a fresh checksum, as someone who read docs/backup.md could."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(body | {"sha256": hashlib.sha256(canonical.encode()).hexdigest()})


def test_a_rewritten_manifest_cannot_reach_outside_the_target(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settings.recordings_dir.mkdir(parents=True)
    (settings.recordings_dir / "a.wav").write_bytes(b"RIFF")
    manifest = backup.create(settings, tmp_path / "backup")
    body = manifest.body()
    body["files"][1]["path"] = "recordings/../../escape.wav"
    (tmp_path / "backup" / "recordings" / "a.wav").rename(tmp_path / "escape.wav")
    (tmp_path / "backup" / "manifest.json").write_text(_sealed(body), encoding="utf-8")

    with pytest.raises(BackupError, match="outside the backup's layout"):
        backup.verify(tmp_path / "backup")


def test_a_recorded_manifest_digest_catches_a_rewritten_manifest(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    manifest = backup.create(settings, tmp_path / "backup")
    body = manifest.body()
    body["created_at"] = "2020-01-01T00:00:00+00:00"
    (tmp_path / "backup" / "manifest.json").write_text(_sealed(body), encoding="utf-8")

    backup.verify(tmp_path / "backup")  # self-consistent, so only the recorded digest can tell
    with pytest.raises(BackupError, match="expected"):
        backup.verify(tmp_path / "backup", expected_sha256=manifest.sha256)


def test_restore_onto_a_database_with_data_needs_force(
    db: sessionmaker[Session], engine: Engine, settings: Settings, target: Settings, tmp_path: Path
) -> None:
    _fill(db, settings)
    backup.create(settings, tmp_path / "backup")
    target_rows = _give_target_data(target)

    with pytest.raises(BackupError, match="already holds data"):
        backup.restore(target, tmp_path / "backup")
    assert _with_engine(target, _rows) == target_rows
    assert _files(target.recordings_dir) == {"old.wav": b"old recording"}

    backup.restore(target, tmp_path / "backup", force=True)
    assert _with_engine(target, _rows) == _rows(engine)
    assert _files(target.recordings_dir) == RECORDING_FILES


def test_restore_refuses_a_nonempty_recordings_folder(
    db: sessionmaker[Session], settings: Settings, target: Settings, tmp_path: Path
) -> None:
    _fill(db, settings)
    backup.create(settings, tmp_path / "backup")
    (target.recordings_dir / "x").mkdir(parents=True)

    with pytest.raises(BackupError, match="is not empty"):
        backup.restore(target, tmp_path / "backup")


def test_a_backup_restores_only_onto_its_own_backend(
    db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    _fill(db, settings)
    manifest = backup.create(settings, tmp_path / "backup")
    other = (
        "postgresql+psycopg://nobody@127.0.0.1:1/none"
        if manifest.backend == "sqlite"
        else f"sqlite:///{tmp_path / 'other.db'}"
    )
    elsewhere = load_settings(
        environ={"HOTLINE_VAR_DIR": str(tmp_path / "other"), "DATABASE_URL": other},
        config_file=tmp_path / "absent.toml",
    )

    with pytest.raises(BackupError, match=f"restores only onto {manifest.backend}"):
        backup.restore(elsewhere, tmp_path / "backup")
    assert not (tmp_path / "other.db").exists() and not (tmp_path / "other").exists()


def test_create_never_overwrites(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "keep.txt").write_text("mine", encoding="utf-8")

    with pytest.raises(BackupError, match="already exists"):
        backup.create(settings, tmp_path / "backup")
    assert [p.name for p in (tmp_path / "backup").iterdir()] == ["keep.txt"]
