"""Per-process copies of small tables that every dispatch reads and administrators rarely edit.

A dispatch needs the city's calendar overrides and the categories' time limits; reading them
from SQL each time cost two round trips per ticket (docs/benchmarks.md). A `TableCache` keeps
what its loader read, per engine, and drops it:

- at once, in this process, when SQLAlchemy executes an INSERT, UPDATE or DELETE on the table
  through that engine (ORM flushes, bulk statements, Core statements: the admin pages, seeding,
  tests emptying tables), and again when that connection goes back to the pool, its transaction
  committed or rolled back; until then the connection that wrote reads the table from SQL,
  uncached (its rows are not committed yet, and may never be);
- otherwise after `MAX_AGE_S`: that bounds how long another process (a second web node, the RQ
  worker) keeps using the old rows after an edit made elsewhere.

Writes made with raw SQL text are not noticed (nothing in the project writes these tables so).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import UpdateBase

T = TypeVar("T")

MAX_AGE_S = 60.0
# Connection.info key (the pooled connection's own dict): the tables it wrote since its checkout.
_WRITTEN = "tickets.table_cache.written"

# Table name -> the caches of that table (a module-level registry: the caches are per process).
_CACHES: dict[str, list[TableCache[Any]]] = {}
_WATCHED: weakref.WeakSet[Engine] = weakref.WeakSet()


class TableCache(Generic[T]):
    """`get(session)`: what `load(session)` returned, reused until the table is written or it ages."""

    def __init__(self, table_name: str, load: Callable[[Session], T], max_age_s: float = MAX_AGE_S) -> None:
        self.table_name, self._load, self.max_age_s = table_name, load, max_age_s
        self._entries: weakref.WeakKeyDictionary[Engine, tuple[float, T]] = weakref.WeakKeyDictionary()
        self._generations: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()
        _CACHES.setdefault(table_name, []).append(self)

    def get(self, session: Session) -> T:
        connection = session.connection()
        engine = connection.engine
        if engine not in _WATCHED:
            _watch(engine)
        if self.table_name in connection.info.get(_WRITTEN, ()):
            return self._load(session)  # this transaction's own, maybe uncommitted, rows
        entry = self._entries.get(engine)
        now = time.monotonic()
        if entry is not None and now - entry[0] < self.max_age_s:
            return entry[1]
        generation = self._generations.get(engine, 0)
        value = self._load(session)
        # Not kept if a write was seen while loading: it may have missed that write.
        if self._generations.get(engine, 0) == generation:
            self._entries[engine] = (now, value)
        return value

    def drop(self, engine: Engine) -> None:
        self._generations[engine] = self._generations.get(engine, 0) + 1
        self._entries.pop(engine, None)


def _drop(engine: Engine, table_names: set[str]) -> None:
    for name in table_names:
        for cache in _CACHES.get(name, ()):
            cache.drop(engine)


def _after_execute(connection: Connection, statement: Any, *_args: Any) -> None:
    if not isinstance(statement, UpdateBase):
        return
    name = getattr(statement.table, "name", None)
    if name in _CACHES:
        connection.info.setdefault(_WRITTEN, set()).add(name)
        _drop(connection.engine, {name})


def _watch(engine: Engine) -> None:
    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        # After its commit or rollback: a reader that loaded meanwhile may hold the old rows.
        written = record.info.pop(_WRITTEN, None) if record is not None else None
        if written:
            _drop(engine, written)

    event.listen(engine, "after_execute", _after_execute)
    event.listen(engine, "checkin", checked_in)
    _WATCHED.add(engine)
