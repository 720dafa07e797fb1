"""Ticket numbers: the Asia/Shanghai date and a daily sequence, e.g. 20261127-0042.

The sequence comes from one counter row per day, created or incremented by one INSERT ... ON
CONFLICT DO UPDATE ... RETURNING inside the creating transaction: SQLite serialises writers on
the database lock and PostgreSQL on the row lock (a concurrent insert of the same day waits and
then updates), so two processes creating tickets at once never get the same number.
"""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import dml as pg_dml
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import dml as sqlite_dml
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from tickets.models import TicketCounter

LOCAL = ZoneInfo("Asia/Shanghai")


@functools.cache
def _upsert(dialect: str) -> ReturningInsert[tuple[int]]:
    """The day's upsert, built once per dialect and run on the session's connection (no ORM work)."""
    insert: pg_dml.Insert | sqlite_dml.Insert
    if dialect == "postgresql":
        insert = pg_insert(TicketCounter)
    elif dialect == "sqlite":
        insert = sqlite_insert(TicketCounter)
    else:
        raise NotImplementedError(f"ticket numbering on {dialect}")
    # One statement: the day's first ticket creates the row, later ones increment it under its lock.
    return (
        insert.values(day=bindparam("day"), last=1)
        .on_conflict_do_update(index_elements=[TicketCounter.day], set_={"last": TicketCounter.last + 1})
        .returning(TicketCounter.last)
    )


def next_number(session: Session, now: dt.datetime) -> str:
    day = now.astimezone(LOCAL).strftime("%Y%m%d")
    connection = session.connection()  # the session's transaction: the row lock lasts until its end
    sequence = connection.execute(_upsert(connection.dialect.name), {"day": day}).scalar_one()
    return f"{day}-{sequence:04d}"
