"""The agent's desk: seat state buttons, call controls, the caller's history, writing the ticket.

Pages render once; the state lives in Redis (the ACD store) and SQL, and the browser keeps it
current through Socket.IO events and the JSON endpoints here (re-read on every reconnect).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import case, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import TooManyRequests

from acd.models import Call, Seat
from acd.seat_states import NOT_READY_REASONS, SeatEvent, SeatTransitionError
from acd.store import AcdStore
from agent_desk import call_controls, ivr_path
from agent_desk.call_report import QUEUE_LABELS, queue_names
from hotline.accounts import Role, User, audit, require_role
from hotline.db import transaction
from tickets import catalog, labels
from tickets.duplicates import possible_duplicates
from tickets.lifecycle import Action
from tickets.models import Channel, Department, DepartmentKind, RequestKind, Ticket, TicketStatus, Urgency
from tickets.service import apply, create_ticket

agent_bp = Blueprint("agent", __name__, template_folder="templates", url_prefix="/desk")

STATE_LABELS = {
    "logged_out": "未签入",
    "ready": "示闲",
    "not_ready": "示忙",
    "offered": "振铃",
    "talking": "通话中",
    "held": "保持",
    "wrap_up": "话后处理",
}
# Seat events an agent may send from the desk; the rest come from the softswitch.
DESK_EVENTS = {
    "login": SeatEvent.LOGIN,
    "ready": SeatEvent.READY,
    "not_ready": SeatEvent.NOT_READY,
    "logout": SeatEvent.LOGOUT,
}
OPEN_STATUSES = {
    TicketStatus.ACCEPTED,
    TicketStatus.DISPATCHED,
    TicketStatus.SIGNED,
    TicketStatus.IN_PROGRESS,
    TicketStatus.RETURNED,
    TicketStatus.REPLIED,
}


def _db() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    return factory


def _acd() -> AcdStore:
    store: AcdStore = current_app.extensions["hotline"]["acd"]
    return store


def _my_seat(session: Session) -> Seat:
    seat = session.scalar(select(Seat).where(Seat.agent_id == current_user.id, Seat.active.is_(True)))
    if seat is None:
        abort(404, description="您没有分配座席，请联系管理员")
    return seat


def _seat_state(extension: str) -> dict[str, Any]:
    try:
        live = _acd().seat(extension)
    except KeyError:
        return {
            "extension": extension,
            "state": "logged_out",
            "label": STATE_LABELS["logged_out"],
            "reason": "",
            "since": None,
            "registered": False,
            "call_id": "",
        }
    return {
        "extension": extension,
        "state": live.state.value,
        "label": STATE_LABELS[live.state.value],
        "reason": NOT_READY_REASONS.get(live.reason, live.reason),
        "since": live.since,
        "registered": live.registered,
        "call_id": live.call_id,
    }


@agent_bp.get("/")
@require_role(Role.AGENT, Role.SUPERVISOR)
def desk() -> ResponseReturnValue:
    with _db()() as session:
        seat = _my_seat(session)
        departments = list(
            session.scalars(select(Department).where(Department.active.is_(True)).order_by(Department.id))
        )
        return render_template(
            "desk/agent.html",
            seat=seat,
            reasons=NOT_READY_REASONS,
            queues=[(q, QUEUE_LABELS.get(q, q)) for q in _queue_names(session)],
            colleagues=_colleagues(session, seat.extension),
            transfer_numbers=[(d.name, d.hotline_number) for d in departments if d.hotline_number],
            emergency_numbers=call_controls.emergency_numbers(),
            departments=departments,
            districts=[d.name for d in departments if d.kind is DepartmentKind.DISTRICT],
            categories=[(c.code, catalog.category_label(session, c.code)) for c in catalog.leaves(session)],
            kinds=labels.KIND,
            urgencies=labels.URGENCY,
        )


def _screen_pop(session: Session, call_id: str) -> dict[str, Any] | None:
    """The pop of the seat's own call, read from its CDR: who calls, the IVR path, the wait.

    The state answer carries it, so the desk pops on the softswitch's seat change (offered) and a
    reloaded or reconnected desk shows it again, whatever events it missed.
    """
    if not call_id:
        return None
    row = session.scalar(select(Call).where(Call.call_id == call_id))
    if row is None:  # the CDR is written off the softswitch's call thread: it may lag a moment
        return {"call_id": call_id, "caller": "", "ivr_steps": [], "wait_s": None, "queue": ""}
    wait_s = None
    if row.queued_at is not None:
        until = row.agent_answered_at or dt.datetime.fromtimestamp(_acd().clock(), dt.UTC)
        wait_s = max(0.0, (until - row.queued_at).total_seconds())
    return {
        "call_id": call_id,
        "caller": row.caller,
        "ivr_steps": ivr_path.steps(row.ivr_path or []),
        "wait_s": wait_s,
        "queue": row.queue,
    }


@agent_bp.get("/api/state")
@require_role(Role.AGENT, Role.SUPERVISOR)
def state() -> ResponseReturnValue:
    with _db()() as session:
        seat = _my_seat(session)
        current = _seat_state(seat.extension)
        current["call"] = _screen_pop(session, current["call_id"])
        current["consult"] = _consult(session, seat.extension)
        return jsonify(current)


@agent_bp.post("/api/seat")
@require_role(Role.AGENT, Role.SUPERVISOR)
def seat_event() -> ResponseReturnValue:
    body = request.get_json(silent=True) or {}
    event = DESK_EVENTS.get(str(body.get("event", "")))
    reason = str(body.get("reason", ""))
    if event is None:
        return jsonify(error="未知的操作"), 400
    if event is SeatEvent.NOT_READY and reason not in NOT_READY_REASONS:
        return jsonify(error="请选择示忙原因"), 400
    with _db()() as session:
        seat = _my_seat(session)
        extension, skills = seat.extension, dict(seat.skills)
    store = _acd()
    try:
        if event is SeatEvent.LOGIN:
            store.upsert_seat(extension, skills, agent_id=current_user.id)
        store.seat_event(extension, event, reason=reason)
    except SeatTransitionError:
        current = _seat_state(extension)
        return jsonify(error=f"当前状态（{current['label']}）下不能执行该操作", state=current), 409
    return jsonify(_seat_state(extension))


def _consult(session: Session, extension: str) -> dict[str, Any] | None:
    """The attended transfer the seat is part of (see `call_controls.consultation`), with who the
    other seat is: a reloaded desk shows it again."""
    consult = call_controls.consultation(_acd(), extension)
    if consult is None:
        return None
    names = dict(_colleagues(session, extension))
    return {
        "role": consult.role.value,
        "extension": consult.other,
        "name": names.get(consult.other, ""),
        "answered": consult.answered,
    }


def _queue_names(session: Session) -> list[str]:
    return queue_names(session.scalars(select(Seat).where(Seat.active.is_(True))))


def _colleagues(session: Session, own_extension: str) -> list[tuple[str, str]]:
    """The other active seats a call may be transferred to: (extension, who sits there)."""
    rows = session.execute(
        select(Seat.extension, Seat.name, User.display_name)
        .outerjoin(User, User.id == Seat.agent_id)
        .where(Seat.active.is_(True), Seat.extension != own_extension)
        .order_by(Seat.extension)
    )
    return [(extension, agent or name or extension) for extension, name, agent in rows]


@agent_bp.post("/api/call/<action>")
@require_role(Role.AGENT, Role.SUPERVISOR)
def call_control(action: str) -> ResponseReturnValue:
    """Hold, resume, hang up, survey, transfers, emergency, leave a 3-way call: on the seat's own call."""
    body = request.get_json(silent=True) or {}
    with _db()() as session:
        extension = _my_seat(session).extension
        queues = _queue_names(session)
        colleagues = [ext for ext, _name in _colleagues(session, extension)]
    try:
        command = call_controls.agent_command(_acd(), extension, action, body, queues, colleagues)
    except call_controls.Refused as refused:
        return refused.answer()
    return call_controls.send(command)


agent_bp.record_once(call_controls.limit_per_user("agent.call_control"))
agent_bp.register_error_handler(TooManyRequests, call_controls.too_many)


@agent_bp.get("/api/history")
@require_role(Role.AGENT, Role.SUPERVISOR)
def history() -> ResponseReturnValue:
    """Earlier tickets of a phone number, open ones first (the screen pop shows them)."""
    phone = "".join(c for c in request.args.get("phone", "") if c.isdigit() or c == "+")
    if len(phone) < 3:
        return jsonify(tickets=[])
    with _db()() as session:
        open_first = case((Ticket.status.in_(OPEN_STATUSES), 0), else_=1)
        rows = session.scalars(
            select(Ticket)
            .where(Ticket.caller_phone == phone)
            .order_by(open_first, Ticket.created_at.desc())
            .limit(20)
        )
        return jsonify(
            tickets=[
                {
                    "number": t.number,
                    "status": labels.STATUS[t.status],
                    "open": t.status in OPEN_STATUSES,
                    "title": t.title,
                    "created_at": t.created_at.isoformat(),
                }
                for t in rows
            ]
        )


@agent_bp.get("/api/suggest")
@require_role(Role.AGENT, Role.SUPERVISOR)
def suggest() -> ResponseReturnValue:
    """The dispatch catalog's proposal and possible duplicates for what the agent has typed so far."""
    args = request.args
    category, district = args.get("category", ""), args.get("district", "")
    phone = "".join(c for c in args.get("phone", "") if c.isdigit())
    with _db()() as session:
        proposals = catalog.suggest(session, category, district, args.get("text", "")) if category else []
        duplicates = possible_duplicates(
            session,
            caller_phone=phone,
            category_code=category,
            district=district,
            address=args.get("address", ""),
        )
        return jsonify(
            suggestions=[
                {
                    "department_id": p.lead.id,
                    "department": p.lead.name,
                    "assists": [a.name for a in p.assists],
                    "reasons": list(p.reasons),
                }
                for p in proposals[:3]
            ],
            duplicates=[
                {
                    "number": d.ticket.number,
                    "title": d.ticket.title,
                    "status": labels.STATUS[d.ticket.status],
                    "open": d.open,
                    "reasons": list(d.reasons),
                }
                for d in duplicates
            ],
        )


@agent_bp.post("/api/tickets")
@require_role(Role.AGENT, Role.SUPERVISOR)
def new_ticket() -> ResponseReturnValue:
    """Write the work order: resolved on the phone (直接办结) or dispatched to a department."""
    form = request.get_json(silent=True) or {}
    content = str(form.get("content", "")).strip()
    outcome = str(form.get("outcome", ""))
    errors = {}
    if not content:
        errors["content"] = "请填写诉求内容"
    if outcome not in {"resolve", "dispatch"}:
        errors["outcome"] = "请选择直接办结或派单"
    department_id = form.get("department_id")
    if outcome == "dispatch" and not str(department_id or "").isdigit():
        errors["department_id"] = "派单请选择承办单位"
    try:
        urgency = Urgency(str(form.get("urgency") or Urgency.NORMAL.value))
        kind = RequestKind(str(form.get("request_kind") or RequestKind.HELP.value))
    except ValueError:
        errors["urgency"] = "紧急程度或诉求类型无效"
    category_code = str(form.get("category_code", "")).strip()
    if outcome == "dispatch" and not category_code:
        errors["category_code"] = "派单请选择诉求分类"
    if errors:
        return jsonify(errors=errors), 400
    with transaction(_db()) as session:
        department = session.get(Department, int(str(department_id))) if outcome == "dispatch" else None
        if outcome == "dispatch" and (department is None or not department.active):
            return jsonify(errors={"department_id": "承办单位不存在"}), 400
        ticket = create_ticket(
            session,
            channel=Channel.PHONE,
            content=content[:4000],
            title=str(form.get("title", "")).strip()[:200],
            caller_phone="".join(c for c in str(form.get("caller_phone", "")) if c.isdigit())[:32],
            caller_name=str(form.get("caller_name", "")).strip()[:64],
            call_id=str(form.get("call_id", "")) or None,
            actor_id=current_user.id,
            confidential=bool(form.get("confidential")),
            category_code=category_code[:6],
            district=str(form.get("district", "")).strip()[:64],
            address=str(form.get("address", "")).strip()[:200],
            urgency=urgency,
            request_kind=kind,
        )
        # A new ticket is ACCEPTED: both outcomes are in the lifecycle table from there.
        if outcome == "resolve":
            note = str(form.get("answer", ""))[:2000]
            apply(session, ticket, Action.RESOLVE_DIRECTLY, actor_id=current_user.id, note=note)
        elif department is not None:
            apply(session, ticket, Action.DISPATCH, actor_id=current_user.id, department_id=department.id)
        audit(
            session, "ticket.create", actor_id=current_user.id, target_type="ticket", target_id=ticket.number
        )
        return jsonify(number=ticket.number, status=labels.STATUS[ticket.status]), 201
