"""The supervisor's wallboard: seats by state with time in state, the queues, today's charts, and
listening in on a seat's call (监听/耳语/强插) from the supervisor's own seat phone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import TooManyRequests

from acd.models import Seat
from acd.reports import wallboard_figures
from acd.seat_states import NOT_READY_REASONS
from acd.store import AcdStore
from agent_desk import call_controls
from agent_desk.agent import STATE_LABELS
from agent_desk.call_report import QUEUE_LABELS, call_report
from agent_desk.report_tables import pct
from hotline.accounts import Role, User, require_role

wall_bp = Blueprint("wallboard", __name__, template_folder="templates", url_prefix="/wallboard")

LOCAL = ZoneInfo("Asia/Shanghai")


@wall_bp.get("/")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def wallboard() -> ResponseReturnValue:
    return render_template("desk/wallboard.html")


@wall_bp.get("/api/state")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def state() -> ResponseReturnValue:
    store: AcdStore = current_app.extensions["hotline"]["acd"]
    with current_app.extensions["hotline"]["db"]() as session:
        own_extension = _own_extension(session)
        figures = wallboard_figures(session, dt.datetime.fromtimestamp(store.clock(), dt.UTC))
        rows = session.execute(
            select(Seat.extension, Seat.name, User.display_name)
            .outerjoin(User, User.id == Seat.agent_id)
            .where(Seat.active.is_(True))
            .order_by(Seat.extension)
        ).all()
    live = {seat.extension: seat for seat in store.seats()}
    now = store.clock()
    seats = []
    for extension, name, agent in rows:
        seat = live.get(extension)
        state = seat.state.value if seat else "logged_out"
        seats.append(
            {
                "extension": extension,
                "name": name,
                "agent": agent or "",
                "state": state,
                "label": STATE_LABELS[state],
                "reason": NOT_READY_REASONS.get(seat.reason, seat.reason) if seat else "",
                "in_state_s": round(now - seat.since) if seat and seat.since else None,
                "registered": bool(seat and seat.registered),
                # The call a supervisor may listen in on (none once the seat is in wrap-up).
                "call_id": seat.call_id if seat and seat.state in call_controls.ON_CALL else "",
            }
        )
    queues = [
        {"queue": name, "label": QUEUE_LABELS.get(name, name), **stats}
        for name, stats in store.queue_stats().items()
    ]
    return jsonify(seats=seats, queues=queues, at=now, own_extension=own_extension, **figures)


def _own_extension(session: Session) -> str | None:
    """The supervisor's own seat, whose phone the softswitch calls to listen in."""
    return session.scalar(
        select(Seat.extension).where(Seat.agent_id == current_user.id, Seat.active.is_(True))
    )


@wall_bp.post("/api/supervise/<action>")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def supervise(action: str) -> ResponseReturnValue:
    """Listen, whisper, barge or stop on the call of the seat `extension` (JSON: extension, call_id)."""
    body = request.get_json(silent=True) or {}
    with current_app.extensions["hotline"]["db"]() as session:
        own_extension = _own_extension(session)
    store: AcdStore = current_app.extensions["hotline"]["acd"]
    try:
        command = call_controls.supervision_command(store, own_extension, action, body)
    except call_controls.Refused as refused:
        return refused.answer()
    return call_controls.send(command)


wall_bp.record_once(call_controls.limit_per_user("wallboard.supervise"))
wall_bp.register_error_handler(TooManyRequests, call_controls.too_many)


@wall_bp.get("/api/charts")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def charts() -> ResponseReturnValue:
    """Today's calls per quarter hour up to now (offered, answered, abandoned, service level)."""
    store: AcdStore = current_app.extensions["hotline"]["acd"]
    now = dt.datetime.fromtimestamp(store.clock(), dt.UTC)
    local = now.astimezone(LOCAL)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
    with current_app.extensions["hotline"]["db"]() as session:
        rows, total = call_report(session, midnight, now, "quarter")
    found = {int(r.key): r for r in rows}
    # Every quarter hour from midnight to now, so the time axis has no holes.
    slots = range(local.hour * 4 + local.minute // 15 + 1)
    labels = [f"{q // 4:02d}:{q % 4 * 15:02d}" for q in slots]
    return jsonify(
        labels=labels,
        offered=[found[q].offered if q in found else 0 for q in slots],
        answered=[found[q].answered if q in found else 0 for q in slots],
        abandoned=[found[q].abandoned if q in found else 0 for q in slots],
        service_level=[_percent(found[q].service_level) if q in found else None for q in slots],
        today={"offered": total.offered, "service_level": pct(total.service_level)},
    )


def _percent(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 1)
