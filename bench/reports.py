"""Report queries over a month of a busy city's data, on SQLite and (with DATABASE_URL) PostgreSQL.

A month of 3,000 queued calls a day (90,000 CDRs), 20 seats changing state 60 times a day, and
1,500 tickets a day (45,000, with lead assignments, replies and ratings), after two months of
the same history that the month's queries must not read. Timed: the calls report
by day, queue and seat, the tickets report by department and category, the hot topics of one
week (Chinese segmentation of about 10,000 tickets), the wallboard's quarter-hour figures of one
day, and as a baseline the same month's call figures computed the old way (every CDR loaded
into Python, `acd.reports.stats_between`).

    python bench/reports.py                      # SQLite only
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/hotline_bench_reports python bench/reports.py

The PostgreSQL database must be a scratch one: the script empties the tables it fills.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, text
from sqlalchemy.orm import Session

# bench/tickets.py is named like the `tickets` package: keep this folder off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from acd.models import Call, Seat, SeatEvent  # noqa: E402
from acd.reports import stats_between  # noqa: E402
from agent_desk.call_report import call_report  # noqa: E402
from agent_desk.hot_topics import hot_topics  # noqa: E402
from agent_desk.ticket_report import ticket_report  # noqa: E402
from hotline import migrate  # noqa: E402
from hotline.db import make_engine, make_session_factory  # noqa: E402
from tickets.models import (  # noqa: E402
    AssignmentRole,
    AssignmentState,
    Channel,
    Department,
    DepartmentKind,
    Ticket,
    TicketAssignment,
    TicketEvent,
    TicketStatus,
)
from tickets.models_outcomes import Rating, Satisfaction  # noqa: E402

DAYS, CALLS_PER_DAY, TICKETS_PER_DAY, SEATS = 30, 3000, 1500, 20
HISTORY_DAYS = 60  # earlier data the month's queries must not read
START = dt.datetime(2026, 10, 31, 16, 0, tzinfo=dt.UTC)  # 2026-11-01 00:00 in Shanghai
FIRST = START - dt.timedelta(days=HISTORY_DAYS)
TOPICS = [
    "小区路灯不亮，晚上出行不便",
    "楼下餐馆油烟扰民，噪音很大",
    "自来水停水两天，没有通知",
    "公积金提取需要什么材料",
    "道路施工围挡占用人行道",
    "物业乱收停车费",
    "社保卡补办流程咨询",
    "垃圾清运不及时，气味难闻",
    "学校周边交通拥堵",
    "企业开办营业执照办理进度",
]
DISTRICTS = ["钟山区", "水城区", "盘州市", "六枝特区"]


def fill(session: Session) -> None:
    rnd = random.Random(12345)
    for model in (Rating, TicketEvent, TicketAssignment, Ticket, Call, SeatEvent, Seat, Department):
        session.execute(delete(model))
    session.execute(
        insert(Department),
        [
            {"id": d, "code": f"bench{d}", "name": f"单位{d}", "kind": DepartmentKind.BUREAU}
            for d in range(1, 21)
        ],
    )
    session.execute(
        insert(Seat),
        [
            {"id": s, "extension": f"9{s:03d}", "sip_password": "x", "skills": {"general": 1}}
            for s in range(1, 21)
        ],
    )
    calls, events = [], []
    for n in range((HISTORY_DAYS + DAYS) * CALLS_PER_DAY):
        queued = FIRST + dt.timedelta(seconds=rnd.uniform(0, (HISTORY_DAYS + DAYS) * 86400))
        fate = rnd.random()
        answered = queued + dt.timedelta(seconds=rnd.expovariate(1 / 10)) if fate < 0.85 else None
        gave_up = queued + dt.timedelta(seconds=rnd.uniform(1, 60))
        ended = answered + dt.timedelta(seconds=rnd.uniform(60, 300)) if answered else gave_up
        queue = rnd.choices(["general", "enterprise", "dialect"], [80, 12, 8])[0]
        seat = rnd.randint(1, SEATS) if answered else None
        calls.append(
            {
                "call_id": f"b{n}",
                "arrived_at": queued,
                "queued_at": queued,
                "agent_answered_at": answered,
                "ended_at": ended,
                "queue": queue,
                "seat_id": seat,
            }
        )
    for seat in range(1, SEATS + 1):
        at = FIRST
        states = ["ready", "talking", "wrap_up", "ready", "not_ready"]
        for k in range((HISTORY_DAYS + DAYS) * 60):
            at += dt.timedelta(seconds=rnd.uniform(300, 1140))
            events.append({"seat_id": seat, "at": at, "from_state": "", "to_state": states[k % len(states)]})
    session.execute(insert(Call), calls)
    session.execute(insert(SeatEvent), events)
    tickets, shares, outcomes, ratings = [], [], [], []
    for n in range(1, (HISTORY_DAYS + DAYS) * TICKETS_PER_DAY + 1):
        created = FIRST + dt.timedelta(seconds=rnd.uniform(0, (HISTORY_DAYS + DAYS) * 86400))
        department = rnd.randint(1, 20) if rnd.random() < 0.7 else None
        tickets.append(
            {
                "id": n,
                "number": f"B{n:07d}",
                "status": TicketStatus.DISPATCHED if department else TicketStatus.RESOLVED_DIRECTLY,
                "channel": rnd.choice(list(Channel)),
                "title": rnd.choice(TOPICS)[:8],
                "content": rnd.choice(TOPICS) + "，" + rnd.choice(TOPICS),
                "category_code": f"0{rnd.randint(1, 9)}0101",
                "district": rnd.choice(DISTRICTS),
                "department_id": department,
                "created_at": created,
                "updated_at": created,
                "deadline_at": created + dt.timedelta(days=5) if department else None,
            }
        )
        if department:
            replied = created + dt.timedelta(days=rnd.uniform(0.5, 7)) if rnd.random() < 0.6 else None
            shares.append(
                {
                    "ticket_id": n,
                    "department_id": department,
                    "role": AssignmentRole.LEAD,
                    "state": AssignmentState.REPLIED if replied else AssignmentState.DISPATCHED,
                    "assigned_at": created,
                    "replied_at": replied,
                }
            )
            if replied and rnd.random() < 0.5:
                outcomes.append(
                    {"id": n, "ticket_id": n, "action": "reply", "to_status": TicketStatus.REPLIED}
                )
                ratings.append(
                    {
                        "ticket_id": n,
                        "outcome_event_id": n,
                        "level": rnd.choice(list(Satisfaction)),
                        "channel": "ivr",
                        "rated_at": replied,
                    }
                )
        else:
            outcomes.append(
                {
                    "id": n,
                    "ticket_id": n,
                    "action": "resolve_directly",
                    "to_status": TicketStatus.RESOLVED_DIRECTLY,
                }
            )
    session.execute(insert(Ticket), tickets)
    session.execute(insert(TicketAssignment), shares)
    session.execute(insert(TicketEvent), outcomes)
    session.execute(insert(Rating), ratings)


def timed(run: Callable[[], Any], repeat: int = 5) -> float:
    """The fastest of `repeat` runs in ms: the machine is shared, and noise only ever adds."""
    spans = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        spans.append(time.perf_counter() - started)
    return min(spans) * 1000


def measure(url: str) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    started = time.perf_counter()
    with factory.begin() as session:
        fill(session)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))  # planner statistics, as autovacuum keeps them in production
        conn.commit()
    print(f"{engine.dialect.name}: filled in {time.perf_counter() - started:.1f} s")
    month_end = START + dt.timedelta(days=DAYS)
    week = (START + dt.timedelta(days=14), START + dt.timedelta(days=21))
    day = (START + dt.timedelta(days=20), START + dt.timedelta(days=21))
    now = month_end
    with factory() as session:
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("calls by day (month)", lambda: call_report(session, START, month_end, "day")),
            ("calls by queue (month)", lambda: call_report(session, START, month_end, "queue")),
            ("calls by seat (month)", lambda: call_report(session, START, month_end, "agent")),
            ("wallboard quarter hours (day)", lambda: call_report(session, *day, "quarter")),
            (
                "tickets by department (month)",
                lambda: ticket_report(session, START, month_end, now, "department"),
            ),
            ("tickets by day (month)", lambda: ticket_report(session, START, month_end, now, "day")),
            ("hot topics (week)", lambda: hot_topics(session, *week)),
            ("baseline: month's call figures in Python", lambda: stats_between(session, START, month_end)),
        ]
        for name, run in cases:
            print(f"  {name:45s} {timed(run):8.1f} ms")
    engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        measure(f"sqlite:///{tmp}/bench.db")
    if os.environ.get("DATABASE_URL"):
        measure(os.environ["DATABASE_URL"])


if __name__ == "__main__":
    main()
