"""Ticket numbers: the Asia/Shanghai date and a daily sequence, e.g. 20261127-0042.

The sequence comes from one counter row per day, incremented with UPDATE ... RETURNING inside
the creating transaction: SQLite serialises writers on the database lock and PostgreSQL on the
row lock, so two processes creating tickets at once never get the same number.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tickets.models import TicketCounter

LOCAL = ZoneInfo("Asia/Shanghai")


def next_number(session: Session, now: dt.datetime) -> str:
    day = now.astimezone(LOCAL).strftime("%Y%m%d")
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(TicketCounter).values(day=day, last=0).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite_insert(TicketCounter).values(day=day, last=0).on_conflict_do_nothing())
    else:
        raise NotImplementedError(f"ticket numbering on {dialect}")
    sequence = session.execute(
        update(TicketCounter)
        .where(TicketCounter.day == day)
        .values(last=TicketCounter.last + 1)
        .returning(TicketCounter.last)
    ).scalar_one()
    return f"{day}-{sequence:04d}"
