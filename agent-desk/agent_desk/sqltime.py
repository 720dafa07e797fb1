"""Time arithmetic inside SQL that reads the same on SQLite and PostgreSQL: seconds and local buckets.

Reports group and average in the database rather than pulling every CDR into Python. The two
backends spell time differently (SQLite keeps UTC text, PostgreSQL `timestamptz`), so these are
SQL expressions compiled per dialect. Asia/Shanghai has had no daylight saving since 1991, so a
fixed +8 hours is exact for the local day, hour and quarter hour.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Integer, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

# Bucket name -> (SQLite strftime format, PostgreSQL to_char format).
BUCKETS = {
    "hour": ("%Y-%m-%d %H:00", "YYYY-MM-DD HH24:00"),
    "day": ("%Y-%m-%d", "YYYY-MM-DD"),
    "month": ("%Y-%m", "YYYY-MM"),
}


class seconds_between(FunctionElement[float]):  # noqa: N801 - reads like the SQL function it is
    """`later - earlier` in seconds (float)."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _seconds_pg(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


class local_bucket(FunctionElement[str]):  # noqa: N801
    """The Asia/Shanghai hour, day or month of a UTC time, as sortable text ("2026-11-27")."""

    type = String()
    inherit_cache = True

    def __init__(self, column: Any, bucket: str) -> None:
        if bucket not in BUCKETS:
            raise ValueError(f"unknown bucket {bucket!r}")
        self.bucket = bucket
        super().__init__(column)


@compiles(local_bucket, "sqlite")
def _bucket_sqlite(element: local_bucket, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"strftime('{BUCKETS[element.bucket][0]}', {column}, '+8 hours')"


@compiles(local_bucket, "postgresql")
def _bucket_pg(element: local_bucket, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"to_char({column} AT TIME ZONE 'Asia/Shanghai', '{BUCKETS[element.bucket][1]}')"


class local_quarter(FunctionElement[int]):  # noqa: N801
    """The local quarter hour of the day, 0 (00:00–00:15) to 95."""

    type = Integer()
    inherit_cache = True


@compiles(local_quarter, "sqlite")
def _quarter_sqlite(element: local_quarter, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = (compiler.process(c, **kw) for c in element.clauses)
    return (
        f"(CAST(strftime('%H', {column}, '+8 hours') AS INTEGER) * 4"
        f" + CAST(strftime('%M', {column}, '+8 hours') AS INTEGER) / 15)"
    )


@compiles(local_quarter, "postgresql")
def _quarter_pg(element: local_quarter, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = (compiler.process(c, **kw) for c in element.clauses)
    local = f"({column} AT TIME ZONE 'Asia/Shanghai')"
    return (
        f"(CAST(EXTRACT(HOUR FROM {local}) AS INTEGER) * 4"
        f" + CAST(EXTRACT(MINUTE FROM {local}) AS INTEGER) / 15)"
    )
