"""The outbox page for supervisors and administrators: what was sent, what waits, what failed and why.

Every attempt of a notification is listed with its answer; a failed one can be sent again.
Citizens' phone numbers and addresses are masked here as everywhere outside the ticket itself.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.accounts import Role, audit, require_role
from hotline.db import transaction
from tickets import deadlines, delivery, privacy
from tickets.models import Ticket
from tickets.models_outcomes import Audience, Notification, NotificationAttempt, NotificationState

bp = Blueprint("outbox", __name__, url_prefix="/outbox", template_folder="templates")

KINDS = {
    "ticket.accepted": "受理通知",
    "ticket.dispatched": "派单通知",
    "ticket.replied": "办理结果通知",
    "ticket.closed": "归档通知",
    "ticket.extension_approved": "延期通知",
    "ticket.rework": "退回重办",
    "ticket.urged": "催办",
    "ticket.supervised": "督办",
    "ticket.unsatisfied": "市民不满意",
}
STATES = {
    NotificationState.PENDING: "待发送",
    NotificationState.DELIVERED: "已送达",
    NotificationState.FAILED: "发送失败",
}
AUDIENCES = {Audience.CITIZEN: "市民", Audience.DEPARTMENT: "承办单位", Audience.CENTRE: "热线中心"}
PAGE = 200


def _db() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    return factory


def recipient_label(row: Notification) -> str:
    if row.audience is Audience.CITIZEN:
        if "@" in row.recipient:
            name, _, domain = row.recipient.partition("@")
            return f"{name[:1]}***@{domain}"
        return privacy.mask_phone(row.recipient)
    return row.recipient or "中心邮箱"


def _local(moment: dt.datetime | None) -> str:
    return moment.astimezone(deadlines.LOCAL).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


@bp.get("/")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def index() -> ResponseReturnValue:
    wanted = request.args.get("state", "open")
    query = select(Notification, Ticket.number).outerjoin(Ticket, Ticket.id == Notification.ticket_id)
    if wanted == "open":
        query = query.where(Notification.state != NotificationState.DELIVERED)
    elif wanted in set(NotificationState):
        query = query.where(Notification.state == NotificationState(wanted))
    with _db()() as session:
        rows = session.execute(query.order_by(Notification.id.desc()).limit(PAGE)).all()
        return render_template(
            "outbox/list.html",
            rows=rows,
            wanted=wanted,
            kinds=KINDS,
            states=STATES,
            audiences=AUDIENCES,
            recipient=recipient_label,
            local=_local,
        )


@bp.get("/<int:notification_id>")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def detail(notification_id: int) -> ResponseReturnValue:
    with _db()() as session:
        row = session.get(Notification, notification_id) or abort(404)
        attempts = session.scalars(
            select(NotificationAttempt)
            .where(NotificationAttempt.notification_id == notification_id)
            .order_by(NotificationAttempt.id)
        ).all()
        ticket = session.get(Ticket, row.ticket_id) if row.ticket_id is not None else None
        return render_template(
            "outbox/detail.html",
            row=row,
            number=ticket.number if ticket is not None else "",
            attempts=attempts,
            kinds=KINDS,
            states=STATES,
            audiences=AUDIENCES,
            recipient=recipient_label,
            local=_local,
        )


@bp.post("/<int:notification_id>/retry")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def retry(notification_id: int) -> ResponseReturnValue:
    with transaction(_db()) as session:
        row = session.get(Notification, notification_id) or abort(404)
        if row.state is NotificationState.DELIVERED:
            flash("该通知已送达，无需重发", "error")
        else:
            delivery.retry(session, notification_id)
            audit(
                session,
                "notification.retry",
                actor_id=current_user.id,
                target_type="notification",
                target_id=notification_id,
                source=request.remote_addr or "",
            )
            flash("已重新加入发送队列", "info")
    return redirect(url_for("outbox.detail", notification_id=notification_id), 303)
