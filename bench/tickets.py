"""Tickets created and dispatched per second, on SQLite and (with DATABASE_URL) PostgreSQL.

Each operation is what an agent's "submit" does: one transaction that creates the ticket (with
its number and first event), dispatches it to a department (assignment, deadlines, event,
audit) and commits. The baseline in the same run is a bare one-row INSERT per transaction, so
the ratio says what the ticket engine adds on top of the database's own commit cost.

    python bench/tickets.py                       # SQLite only
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/bench python bench/tickets.py

With DATABASE_URL both backends are measured in the same run (SQLite on a temporary file first,
then PostgreSQL), so their figures share the machine's load. The engine is made as the web makes
it (`hotline.web.ENGINE_OPTIONS`: no pre-ping). Statements per ticket (counted at the cursor;
PostgreSQL adds two round trips per transaction, BEGIN and COMMIT) and the client's CPU per ticket
are printed too: they hold steadier than the rate does.
Use a scratch PostgreSQL database: the tickets it creates stay (history and audit are append-only).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# This script is named like the `tickets` package: keep its own folder off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from sqlalchemy import event, text  # noqa: E402

from hotline import migrate  # noqa: E402
from hotline.db import make_engine, make_session_factory, transaction  # noqa: E402
from hotline.web import ENGINE_OPTIONS  # noqa: E402
from tickets.dispatch import dispatch  # noqa: E402
from tickets.models import Channel, Department, DepartmentKind  # noqa: E402
from tickets.service import create_ticket  # noqa: E402

N = 500


def measure(url: str) -> None:
    engine = make_engine(url, **ENGINE_OPTIONS)  # the pool an agent's submit runs on (the web's)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        dept = session.query(Department).filter_by(code="bench").one_or_none()
        if dept is None:
            dept = Department(code="bench", name="基准测试单位", kind=DepartmentKind.BUREAU)
            session.add(dept)
            session.flush()
        department_id = dept.id
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_baseline"))
        conn.execute(text("CREATE TABLE bench_baseline (id INTEGER PRIMARY KEY, body VARCHAR(200))"))

    base = []
    for n in range(N):
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO bench_baseline (id, body) VALUES (:id, :body)"), {"id": n, "body": "x"}
            )
        base.append(time.perf_counter() - started)

    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    # Statements and client CPU per operation are steadier than rates on a shared machine.
    event.listen(engine, "before_cursor_execute", count)
    cpu = time.process_time()
    ops = []
    for n in range(N):
        started = time.perf_counter()
        with transaction(factory) as session:
            ticket = create_ticket(
                session,
                channel=Channel.PHONE,
                content=f"基准测试诉求 {n}",
                caller_phone="13800000000",
                category_code="010101",  # a real category: its time limit is looked up as in the desk
            )
            dispatch(session, ticket, department_id)
        ops.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu
    event.remove(engine, "before_cursor_execute", count)

    backend = engine.dialect.name
    print(f"backend: {backend}, operations: {N}")
    base_p50 = statistics.median(base) * 1e3
    print(f"  baseline one-row INSERT + COMMIT: {N / sum(base):.0f}/s (p50 {base_p50:.2f} ms)")
    print(
        f"  ticket created + dispatched: {N / sum(ops):.0f}/s (p50 {statistics.median(ops) * 1e3:.2f} ms, "
        f"{statistics.median(ops) / statistics.median(base):.1f}x the baseline)"
    )
    print(f"  per ticket: {statements / N:.1f} SQL statements, {cpu / N * 1e3:.2f} ms of this process's CPU")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE bench_baseline"))
    engine.dispose()


def main() -> None:
    measure(f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}")
    if os.environ.get("DATABASE_URL"):
        measure(os.environ["DATABASE_URL"])


if __name__ == "__main__":
    sys.exit(main())
