"""Ticket numbers: the Asia/Shanghai date and a daily sequence, e.g. 20261127-0042.

The sequence comes from one counter row per day, created or incremented by one INSERT ... ON
CONFLICT DO UPDATE ... RETURNING inside the creating transaction: SQLite serialises writers on
the database lock and PostgreSQL on the row lock (a concurrent insert of the same day waits and
then updates), so two processes creating tickets at once never get the same number.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy.dialects.postgresql import dml as pg_dml
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import dml as sqlite_dml
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tickets.models import TicketCounter

LOCAL = ZoneInfo("Asia/Shanghai")


def next_number(session: Session, now: dt.datetime) -> str:
    day = now.astimezone(LOCAL).strftime("%Y%m%d")
    dialect = session.get_bind().dialect.name
    insert: pg_dml.Insert | sqlite_dml.Insert
    if dialect == "postgresql":
        insert = pg_insert(TicketCounter)
    elif dialect == "sqlite":
        insert = sqlite_insert(TicketCounter)
    else:
        raise NotImplementedError(f"ticket numbering on {dialect}")
    # One statement: the day's first ticket creates the row, later ones increment it under its lock.
    upsert = (
        insert.values(day=day, last=1)
        .on_conflict_do_update(index_elements=[TicketCounter.day], set_={"last": TicketCounter.last + 1})
        .returning(TicketCounter.last)
    )
    sequence = session.execute(upsert).scalar_one()
    return f"{day}-{sequence:04d}"
