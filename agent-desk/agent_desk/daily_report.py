"""The daily report (日报): yesterday's calls, tickets and hot topics as one HTML file under var/reports/.

`daily_report` is an RQ job enqueued by dotted name (`agent_desk.daily_report.daily_report`) by
the worker's periodic loop; nothing imports this module statically. Without a day it writes
yesterday's report once (a later run finds the file and stops); with a day it writes that day's
again. The file is written beside its final name and renamed, so a reader never sees half a
report and two runs at once leave one whole file.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session, sessionmaker

from agent_desk.call_report import call_report
from agent_desk.hot_topics import hot_topics
from agent_desk.report_tables import Table, call_table, ticket_table, topic_table
from agent_desk.ticket_report import ticket_report
from hotline.db import make_engine, make_session_factory, utcnow
from hotline.settings import load_settings

log = logging.getLogger(__name__)
LOCAL = ZoneInfo("Asia/Shanghai")


def reports_dir(var_dir: Path) -> Path:
    return var_dir / "reports"


def report_path(var_dir: Path, day: dt.date) -> Path:
    return reports_dir(var_dir) / f"{day.isoformat()}.html"


def render(session: Session, day: dt.date, now: dt.datetime) -> str:
    """The report of one local day as a self-contained HTML page (no scripts, no external files)."""
    since = dt.datetime.combine(day, dt.time(), LOCAL).astimezone(dt.UTC)
    until = since + dt.timedelta(days=1)
    sections: list[tuple[str, Table]] = []
    for by, first, heading in (("hour", "时段", "话务（按小时）"), ("queue", "队列", "话务（按队列）")):
        rows, total = call_report(session, since, until, by)
        sections.append((heading, call_table(rows, total, first)))
    for by, first, heading in (
        ("channel", "来源", "工单（按来源）"),
        ("department", "承办单位", "工单（按承办单位）"),
    ):
        trows, ttotal = ticket_report(session, since, until, now, by)
        sections.append((heading, ticket_table(trows, ttotal, first)))
    sections.append(("热点诉求", topic_table(hot_topics(session, since, until, limit=10))))
    env = Environment(loader=PackageLoader("agent_desk", "templates"), autoescape=select_autoescape())
    template = env.get_template("desk/daily_report.html")
    return template.render(day=day, sections=sections, generated=now.astimezone(LOCAL))


def write_report(factory: sessionmaker[Session], var_dir: Path, day: dt.date, now: dt.datetime) -> Path:
    path = report_path(var_dir, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    with factory() as session:
        html = render(session, day, now)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    log.info("daily report written: %s", path)
    return path


def daily_report(day: str | None = None) -> str:
    """RQ job: write the report of `day` (ISO date), or of yesterday if not written yet; its path."""
    settings = load_settings()
    now = utcnow()
    if day is None:
        wanted = now.astimezone(LOCAL).date() - dt.timedelta(days=1)
        if report_path(settings.var_dir, wanted).exists():
            return str(report_path(settings.var_dir, wanted))
    else:
        wanted = dt.date.fromisoformat(day)
    engine = make_engine(settings.effective_database_url)
    try:
        return str(write_report(make_session_factory(engine), settings.var_dir, wanted, now))
    finally:
        engine.dispose()
