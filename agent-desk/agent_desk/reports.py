"""Reports for supervisors and administrators: department performance, with CSV and XLSX export."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, render_template, request
from flask.typing import ResponseReturnValue

from hotline.accounts import Role, require_role
from hotline.db import utcnow
from tickets.reports import department_performance, to_csv, to_xlsx

reports_bp = Blueprint("reports", __name__, template_folder="templates", url_prefix="/reports")
LOCAL = ZoneInfo("Asia/Shanghai")
PERIODS = {"day": "日", "week": "周", "month": "月"}


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


@reports_bp.get("/departments")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def departments() -> ResponseReturnValue:
    period = request.args.get("period", "month")
    period = period if period in PERIODS else "month"
    try:
        day = dt.date.fromisoformat(request.args.get("date", ""))
    except ValueError:
        day = utcnow().astimezone(LOCAL).date()
    since, until, title = period_bounds(period, day)
    with current_app.extensions["hotline"]["db"]() as session:
        ranked = department_performance(session, since, until, utcnow())
    name = f"承办单位考核-{day:%Y%m%d}-{period}"
    fmt = request.args.get("format", "")
    if fmt == "csv":
        return Response(
            to_csv(ranked),
            mimetype="text/csv; charset=utf-8",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{_quote(name)}.csv"},
        )
    if fmt == "xlsx":
        return Response(
            to_xlsx(ranked, f"承办单位考核（{title}）"),
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{_quote(name)}.xlsx"},
        )
    return render_template(
        "desk/reports_departments.html",
        ranked=ranked,
        title=title,
        period=period,
        periods=PERIODS,
        day=day.isoformat(),
    )


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text)
