"""Reports for supervisors and administrators: calls, tickets, hot topics, department performance.

Every report has a period (day, ISO week or month, in Asia/Shanghai), a chart, and CSV/XLSX export.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask.typing import ResponseReturnValue

from agent_desk.call_report import call_report
from agent_desk.daily_report import report_path, reports_dir
from agent_desk.hot_topics import hot_topics
from agent_desk.report_tables import Table, call_table, ticket_table, topic_table
from agent_desk.ticket_report import GROUPINGS, ticket_report
from hotline.accounts import Role, require_role
from hotline.db import utcnow
from tickets.reports import csv_bytes, department_performance, to_csv, to_xlsx, xlsx_bytes

reports_bp = Blueprint("reports", __name__, template_folder="templates", url_prefix="/reports")
LOCAL = ZoneInfo("Asia/Shanghai")
PERIODS = {"day": "日", "week": "周", "month": "月"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def period_bounds(period: str, day: dt.date) -> tuple[dt.datetime, dt.datetime, str]:
    """The local day, ISO week or month containing `day`, as UTC bounds and a Chinese title."""
    if period == "day":
        start, end, title = day, day + dt.timedelta(days=1), f"{day:%Y年%m月%d日}"
    elif period == "week":
        start = day - dt.timedelta(days=day.weekday())
        end, title = start + dt.timedelta(days=7), f"{start:%Y年%m月%d日}起一周"
    else:
        start = day.replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1)
        title = f"{start:%Y年%m月}"

    def utc(d: dt.date) -> dt.datetime:
        return dt.datetime.combine(d, dt.time(), LOCAL).astimezone(dt.UTC)

    return utc(start), utc(end), title


CALL_GROUPINGS = {"time": "按时间", "queue": "按队列", "agent": "按座席"}
TICKET_GROUPINGS = {"time": "按时间", **{k: v for k, v in GROUPINGS.items() if k not in ("day", "hour")}}


Period = tuple[str, dt.date, dt.datetime, dt.datetime, str]


def _period(default: str = "month") -> Period:
    """The period asked for in the query string: (period, date, since, until, Chinese title)."""
    period = request.args.get("period", default)
    period = period if period in PERIODS else default
    try:
        day = dt.date.fromisoformat(request.args.get("date", ""))
    except ValueError:
        day = utcnow().astimezone(LOCAL).date()
    since, until, title = period_bounds(period, day)
    return period, day, since, until, title


def _show(
    when: Period, kind: str, heading: str, table: Table, groupings: dict[str, str], by: str
) -> ResponseReturnValue:
    period, day, _since, _until, title = when
    fmt = request.args.get("format", "")
    if fmt in ("csv", "xlsx"):
        name = f"{heading}-{day:%Y%m%d}-{period}-{by}"
        if fmt == "csv":
            return _download(
                csv_bytes(table.header, table.all_rows()), f"{name}.csv", "text/csv; charset=utf-8"
            )
        content = xlsx_bytes(heading, f"{heading}（{title}）", table.header, table.all_rows())
        return _download(content, f"{name}.xlsx", XLSX)
    return render_template(
        "desk/report_table.html",
        kind=kind,
        heading=heading,
        table=table,
        title=title,
        period=period,
        periods=PERIODS,
        day=day.isoformat(),
        by=by,
        groupings=groupings,
    )


def _grouping(period: str, allowed: dict[str, str]) -> tuple[str, str]:
    """The grouping asked for, and what it means here: "time" is hours of a day, else days."""
    by = request.args.get("by", "time")
    by = by if by in allowed else "time"
    return by, ("hour" if period == "day" else "day") if by == "time" else by


@reports_bp.get("/calls")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def calls() -> ResponseReturnValue:
    when = _period()
    by, grouping = _grouping(when[0], CALL_GROUPINGS)
    with current_app.extensions["hotline"]["db"]() as session:
        rows, total = call_report(session, when[2], when[3], grouping)
    first = {"hour": "时段", "day": "日期", "queue": "队列", "agent": "座席"}[grouping]
    return _show(when, "calls", "话务报表", call_table(rows, total, first), CALL_GROUPINGS, by)


@reports_bp.get("/tickets")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def tickets() -> ResponseReturnValue:
    when = _period()
    by, grouping = _grouping(when[0], TICKET_GROUPINGS)
    with current_app.extensions["hotline"]["db"]() as session:
        rows, total = ticket_report(session, when[2], when[3], utcnow(), grouping)
    first = GROUPINGS[grouping].removeprefix("按")
    return _show(when, "tickets", "工单报表", ticket_table(rows, total, first), TICKET_GROUPINGS, by)


@reports_bp.get("/hot")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def hot() -> ResponseReturnValue:
    when = _period(default="week")  # 热点 is this week's by default
    with current_app.extensions["hotline"]["db"]() as session:
        topics = hot_topics(session, when[2], when[3])
    return _show(when, "hot", "热点诉求", topic_table(topics), {}, "")


def _download(content: bytes, filename: str, mimetype: str) -> Response:
    return Response(
        content,
        mimetype=mimetype,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{_quote(filename)}"},
    )


@reports_bp.get("/departments")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def departments() -> ResponseReturnValue:
    period, day, since, until, title = _period()
    with current_app.extensions["hotline"]["db"]() as session:
        ranked = department_performance(session, since, until, utcnow())
    name = f"承办单位考核-{day:%Y%m%d}-{period}"
    fmt = request.args.get("format", "")
    if fmt == "csv":
        return _download(to_csv(ranked), f"{name}.csv", "text/csv; charset=utf-8")
    if fmt == "xlsx":
        return _download(to_xlsx(ranked, f"承办单位考核（{title}）"), f"{name}.xlsx", XLSX)
    return render_template(
        "desk/reports_departments.html",
        ranked=ranked,
        title=title,
        period=period,
        periods=PERIODS,
        day=day.isoformat(),
    )


@reports_bp.get("/daily")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def daily() -> ResponseReturnValue:
    """The daily reports the worker wrote (日报), newest first."""
    folder = reports_dir(current_app.extensions["hotline"]["settings"].var_dir)
    days = sorted((p.stem for p in folder.glob("????-??-??.html")), reverse=True) if folder.is_dir() else []
    return render_template("desk/reports_daily.html", days=days)


@reports_bp.get("/daily/<day>.html")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def daily_file(day: str) -> ResponseReturnValue:
    try:
        wanted = dt.date.fromisoformat(day)  # also keeps the name inside the folder
    except ValueError:
        abort(404)
    path = report_path(current_app.extensions["hotline"]["settings"].var_dir, wanted)
    if not path.is_file():
        abort(404)
    # A download: the file carries its own style, which the site's CSP would not apply inline.
    return _download(path.read_bytes(), f"12345日报-{wanted.isoformat()}.html", "text/html; charset=utf-8")


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text)
