"""The desk's list of missed callers to be called back (漏接回拨), numbers masked.

The softswitch dials the tasks itself (`acd.callbacks`); agents see what is pending so that a
caller who rings again, or asks, can be told, and supervisors see the backlog. A supervisor may
cancel an open task (a nuisance caller, a number known to be wrong), with a reason, audited.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.callbacks import CallbackError, CallbackReason, CallbackStatus, CallbackTask, move
from acd.store import AcdStore
from agent_desk.call_report import QUEUE_LABELS
from hotline.accounts import Role, audit, require_role
from hotline.db import transaction
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
        can_cancel=current_user.role is Role.SUPERVISOR,
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
                "cancellable": t.status is CallbackStatus.OPEN,
            }
            for t in tasks
        ],
    )


@callbacks_bp.post("/callbacks/<int:task_id>/cancel")
@require_role(Role.SUPERVISOR)
def cancel(task_id: int) -> ResponseReturnValue:
    """An open task not to be dialled after all; the reason goes to the task and the audit log."""
    reason = str((request.get_json(silent=True) or {}).get("reason", "")).strip()
    if not reason:
        return jsonify(error="请填写取消回拨的原因"), 400
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    with transaction(factory) as session:
        task = session.get(CallbackTask, task_id, with_for_update=True)
        if task is None:
            return jsonify(error="没有这条回拨任务"), 404
        try:
            move(task, CallbackStatus.CANCELLED, outcome="cancelled")
        except CallbackError:
            return jsonify(error="该任务正在回拨或已结束，不能取消"), 409
        audit(
            session,
            "callback.cancel",
            actor_id=current_user.id,
            target_type="callback_task",
            target_id=task_id,
            detail={"reason": reason[:200]},
            source=request.remote_addr or "",
        )
    return jsonify(ok=True)
