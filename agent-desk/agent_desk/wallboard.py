"""The supervisor's wallboard: seats by state with time in state, and the queues."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, current_app, jsonify, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from acd.models import Seat
from acd.reports import wallboard_figures
from acd.seat_states import NOT_READY_REASONS
from acd.store import AcdStore
from agent_desk.agent import STATE_LABELS
from hotline.accounts import Role, User, require_role

wall_bp = Blueprint("wallboard", __name__, template_folder="templates", url_prefix="/wallboard")

QUEUE_LABELS = {"general": "综合", "enterprise": "涉企专席", "dialect": "方言专席"}


@wall_bp.get("/")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def wallboard() -> ResponseReturnValue:
    return render_template("desk/wallboard.html")


@wall_bp.get("/api/state")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def state() -> ResponseReturnValue:
    store: AcdStore = current_app.extensions["hotline"]["acd"]
    with current_app.extensions["hotline"]["db"]() as session:
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
            }
        )
    queues = [
        {"queue": name, "label": QUEUE_LABELS.get(name, name), **stats}
        for name, stats in store.queue_stats().items()
    ]
    return jsonify(seats=seats, queues=queues, at=now, **figures)
