"""Department performance read from SQL, and report tables exported as CSV and XLSX (the city's rankings)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Mapping, Sequence

from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets.models import AssignmentState, Department, Ticket, TicketAssignment, TicketEvent
from tickets.performance import DEFAULT_WEIGHTS, Figures, Share, figures_for, rank

# Satisfaction comes from the revisit (回访); until it is recorded a share counts as unrated.
SatisfactionLookup = Callable[[Session, Sequence[int]], Mapping[int, bool]]


def _no_ratings(_session: Session, _ticket_ids: Sequence[int]) -> Mapping[int, bool]:
    return {}


def shares(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    satisfaction: SatisfactionLookup = _no_ratings,
) -> list[Share]:
    rows = session.execute(
        select(TicketAssignment, Ticket.sign_deadline_at, Ticket.deadline_at)
        .join(Ticket, Ticket.id == TicketAssignment.ticket_id)
        .where(TicketAssignment.assigned_at >= since, TicketAssignment.assigned_at < until)
    ).all()
    ticket_ids = sorted({a.ticket_id for a, _, _ in rows})
    reopened = set(
        session.scalars(
            select(TicketEvent.ticket_id).where(
                TicketEvent.ticket_id.in_(ticket_ids), TicketEvent.action.in_(("reopen", "reject_reply"))
            )
        )
    )
    ratings = satisfaction(session, ticket_ids)
    return [
        Share(
            department_id=a.department_id,
            assigned_at=a.assigned_at,
            sign_deadline=sign_deadline,
            signed_at=a.signed_at,
            reply_deadline=reply_deadline,
            replied_at=a.replied_at,
            returned=a.state is AssignmentState.RETURNED,
            reopened=a.ticket_id in reopened,
            satisfied=ratings.get(a.ticket_id),
        )
        for a, sign_deadline, reply_deadline in rows
    ]


def department_performance(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    satisfaction: SatisfactionLookup = _no_ratings,
) -> list[tuple[Department, Figures]]:
    """Every active department with its figures for the period, best score first."""
    departments = {d.id: d for d in session.scalars(select(Department).where(Department.active.is_(True)))}
    by_department: dict[int, list[Share]] = {d: [] for d in departments}
    for share in shares(session, since, until, satisfaction):
        by_department.setdefault(share.department_id, []).append(share)
    figures = [figures_for(d, s, now, weights) for d, s in by_department.items() if d in departments]
    return [(departments[f.department_id], f) for f in rank(figures)]


HEADER = ["排名", "承办单位", "派单数", "及时签收率", "按时办结率", "回退率", "重办率", "满意率", "综合得分"]


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def rows_for_export(ranked: Sequence[tuple[Department, Figures]]) -> list[list[str]]:
    return [
        [
            str(n),
            d.name,
            str(f.dispatched),
            _pct(f.sign_rate),
            _pct(f.completion_rate),
            _pct(f.return_rate),
            _pct(f.reopen_rate),
            _pct(f.satisfaction_rate),
            "" if f.score is None else f"{f.score:.1f}",
        ]
        for n, (d, f) in enumerate(ranked, start=1)
    ]


def to_csv(ranked: Sequence[tuple[Department, Figures]]) -> bytes:
    return csv_bytes(HEADER, rows_for_export(ranked))


def to_xlsx(ranked: Sequence[tuple[Department, Figures]], title: str) -> bytes:
    return xlsx_bytes("承办单位考核", title, HEADER, rows_for_export(ranked))


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    """Any report table as CSV."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    # UTF-8 with a BOM: Excel on Chinese Windows opens it with the right characters.
    return ("\ufeff" + out.getvalue()).encode("utf-8")


_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?%?$")


def _excel(text: str) -> tuple[str | int | float | None, str]:
    """A shown cell as Excel should hold it, and its number format: counts and seconds as numbers,
    "50.0%" as 0.5 shown as a percentage, "—" (no data) as an empty cell, anything else as text."""
    if text in ("—", ""):
        return None, ""
    if not _NUMBER.match(text):
        return text, ""
    if text.endswith("%"):
        return float(text[:-1]) / 100, "0.0%"
    return (float(text), "0.0") if "." in text else (int(text), "")


def xlsx_bytes(sheet_name: str, title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    """Any report table as an XLSX workbook: a title line, the header, the rows (numbers as numbers)."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = sheet_name[:31]  # Excel's limit for sheet names
    sheet.append([title])
    sheet.append(list(header))
    for row in rows:
        cells = [_excel(text) for text in row]
        sheet.append([value for value, _ in cells])
        for cell, (_, number_format) in zip(sheet[sheet.max_row], cells, strict=False):
            if number_format:
                cell.number_format = number_format
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
