"""The desk's list of missed callers to be called back (漏接回拨): read-only, numbers masked.

The softswitch dials the tasks itself (`acd.callbacks`); agents see what is pending so that a
caller who rings again, or asks, can be told, and supervisors see the backlog.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.callbacks import CallbackReason, CallbackStatus, CallbackTask
from acd.store import AcdStore
from agent_desk.call_report import QUEUE_LABELS
from hotline.accounts import Role, require_role
from tickets.privacy import mask_phone

callbacks_bp = Blueprint("callbacks", __name__, url_prefix="/desk/api")

LOCAL = ZoneInfo("Asia/Shanghai")
PENDING = (CallbackStatus.OPEN, CallbackStatus.DIALLING)
STATUS_LABELS = {CallbackStatus.OPEN: "待回拨", CallbackStatus.DIALLING: "回拨中"}
REASON_LABELS = {
    CallbackReason.ABANDONED_QUEUE: "排队时挂机",
    CallbackReason.ABANDONED_IVR: "语音导航中挂机",
    CallbackReason.LOST: "通话意外中断",
    CallbackReason.VIRTUAL_HOLD: "市民预约回拨",
    CallbackReason.FALLBACK: "无座席接听",
}
SHOWN = 100


@callbacks_bp.get("/callbacks")
@require_role(Role.AGENT, Role.SUPERVISOR)
def pending() -> ResponseReturnValue:
    """Open and dialling tasks, the earliest due first."""
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    store: AcdStore = current_app.extensions["hotline"]["acd"]
    now = dt.datetime.fromtimestamp(store.clock(), dt.UTC)
    with factory() as session:
        tasks = session.scalars(
            select(CallbackTask)
            .where(CallbackTask.status.in_(PENDING))
            .order_by(CallbackTask.due_at, CallbackTask.id)
            .limit(SHOWN)
        ).all()
    return jsonify(
        tasks=[
            {
                "id": t.id,
                "caller": mask_phone(t.caller),
                "status": STATUS_LABELS[t.status],
                "reason": REASON_LABELS[t.reason],
                "queue": QUEUE_LABELS.get(t.queue, t.queue),
                "missed": t.missed,
                "attempts": t.attempts,
                "due": t.due_at.astimezone(LOCAL).strftime("%m-%d %H:%M"),
                "overdue": t.status is CallbackStatus.OPEN and t.due_at <= now,
            }
            for t in tasks
        ]
    )
