"""The schema: migrations build exactly the models, on SQLite and PostgreSQL, times stay UTC."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from hotline import migrate
from hotline.accounts import Role, User, audit
from hotline.db import make_engine, make_session_factory, transaction
from hotline.models import Base
from tickets.models import Channel, Department, DepartmentKind, Ticket, TicketEvent, TicketStatus


def test_migrations_build_exactly_the_models(engine: Engine) -> None:
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "models changed without a migration (run hotline.migrate.autogenerate)"


def test_upgrade_from_empty_is_repeatable(scratch_database_url: str) -> None:
    engine = make_engine(scratch_database_url)
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)  # a second run (every `hotline serve` start) changes nothing
        assert migrate.current_revision(engine) == migrate.head_revision(engine)
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert int(conn.execute(text("PRAGMA busy_timeout")).scalar() or 0) >= 5000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_times_come_back_as_utc_and_naive_times_are_refused(db: sessionmaker[Session]) -> None:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    local = dt.datetime(2026, 11, 27, 9, 30, tzinfo=shanghai)
    with transaction(db) as session:
        dept = Department(code="ZS", name="钟山区", kind=DepartmentKind.DISTRICT)
        session.add(dept)
        session.flush()
        ticket = Ticket(
            number="20261127-0001", channel=Channel.PHONE, department_id=dept.id, deadline_at=local
        )
        session.add(ticket)
    with db() as session:
        stored = session.scalars(select(Ticket)).one()
        assert stored.deadline_at == local
        assert stored.deadline_at is not None and stored.deadline_at.utcoffset() == dt.timedelta(0)
        assert stored.deadline_at.hour == 1
    with pytest.raises(Exception, match="naive datetime"), transaction(db) as session:
        session.add(
            Ticket(number="20261127-0002", channel=Channel.PHONE, deadline_at=dt.datetime(2026, 1, 1))
        )


def test_ticket_history_and_audit_are_rows_that_read_back(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        user = User(username="zhang", display_name="张敏", role=Role.AGENT, password_hash="x")
        session.add(user)
        session.flush()
        ticket = Ticket(number="20261127-0003", channel=Channel.VOICEMAIL, content="路灯不亮")
        session.add(ticket)
        session.flush()
        session.add(
            TicketEvent(
                ticket_id=ticket.id, actor_id=user.id, action="accept", to_status=TicketStatus.ACCEPTED
            )
        )
        audit(session, "ticket.create", actor_id=user.id, target_type="ticket", target_id=ticket.id)
    with db() as session:
        event = session.scalars(select(TicketEvent)).one()
        assert event.to_status is TicketStatus.ACCEPTED and event.from_status is None
        ticket_row = session.get(Ticket, event.ticket_id)
        assert ticket_row is not None and ticket_row.content == "路灯不亮"


def test_concurrent_writers_from_threads_do_not_fail(engine: Engine, db: sessionmaker[Session]) -> None:
    # The web, the RQ worker and the SIP workers write at once; SQLite must wait, not fail.
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        factory = make_session_factory(engine)
        try:
            for i in range(20):
                with transaction(factory) as session:
                    session.add(Ticket(number=f"T{n:02d}-{i:03d}", channel=Channel.PORTAL))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db() as session:
        assert len(session.scalars(select(Ticket)).all()) == 120
