"""Administration of the organisation: departments, queues and seat skills, holiday overrides.

Every change is audited. A refused form says why in Chinese and saves nothing. Queues are the
skills callers are queued for (the IVR menu names them); their seats and levels are set here and
reach a logged-in seat's live routing at once.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Seat
from acd.store import AcdStore
from agent_desk.call_report import QUEUE_LABELS, queue_names
from hotline.accounts import Role, audit, require_role
from hotline.db import transaction, utcnow
from tickets.deadlines import is_workday
from tickets.models import Department, DepartmentKind
from tickets.work_calendar import CalendarDay

org_bp = Blueprint("admin_org", __name__, template_folder="templates", url_prefix="/admin")

KIND_LABELS = {
    DepartmentKind.BUREAU: "市直委办局",
    DepartmentKind.DISTRICT: "区县",
    DepartmentKind.ENTERPRISE: "公共服务企业",
}
LOCAL = ZoneInfo("Asia/Shanghai")
LEVELS = {1: "熟练（优先）", 2: "一般", 3: "备用"}
CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,31}$")
PHONE = re.compile(r"^[0-9+\-]{3,32}$")


def _db() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    return factory


def _audit(
    session: Session, action: str, target_type: str, target_id: str | int, detail: dict[str, object]
) -> None:
    audit(
        session,
        action,
        actor_id=current_user.id,
        target_type=target_type,
        target_id=target_id,
        detail=detail,
        source=request.remote_addr or "",
    )


# Departments -------------------------------------------------------------------------------------
@org_bp.get("/departments")
@require_role(Role.ADMIN)
def departments() -> ResponseReturnValue:
    with _db()() as session:
        rows = session.scalars(select(Department).order_by(Department.kind, Department.name)).all()
        return render_template("desk/admin_departments.html", departments=rows, kinds=KIND_LABELS)


@org_bp.post("/departments")
@require_role(Role.ADMIN)
def save_department() -> ResponseReturnValue:
    form = request.form
    department_id = int(form["id"]) if form.get("id", "").isdigit() else None
    code, name = form.get("code", "").strip().lower(), form.get("name", "").strip()
    contact, hotline_number = form.get("contact", "").strip(), form.get("hotline_number", "").strip()
    try:
        kind = DepartmentKind(form.get("kind", ""))
    except ValueError:
        kind = None
    error = None
    if not name or len(name) > 100:
        error = "请填写单位名称（不超过100字）"
    elif department_id is None and not CODE.match(code):
        error = "单位代码需为 2–32 位小写字母、数字、- 或 _"
    elif kind is None:
        error = "请选择单位类型"
    elif hotline_number and not PHONE.match(hotline_number):
        error = "热线号码只能包含数字、+ 和 -"
    elif len(contact) > 200:
        error = "联系人信息不超过200字"
    if error:
        flash(error, "error")
        return redirect(url_for("admin_org.departments"))
    assert kind is not None
    with transaction(_db()) as session:
        same_name = session.scalar(select(Department).where(Department.name == name))
        if department_id is None:
            if same_name or session.scalar(select(Department).where(Department.code == code)):
                flash(f"单位名称或代码已存在：{name}", "error")
                return redirect(url_for("admin_org.departments"))
            department = Department(code=code, name=name, kind=kind)
            session.add(department)
        else:
            found = session.get(Department, department_id)
            if found is None:
                flash("单位不存在", "error")
                return redirect(url_for("admin_org.departments"))
            if same_name is not None and same_name.id != department_id:
                flash(f"单位名称已存在：{name}", "error")
                return redirect(url_for("admin_org.departments"))
            department = found
        department.name, department.kind = name, kind
        department.contact, department.hotline_number = contact, hotline_number
        department.active = form.get("active") == "1"
        session.flush()
        _audit(
            session,
            "department.create" if department_id is None else "department.update",
            "department",
            department.id,
            {"name": name, "kind": kind.value, "hotline_number": hotline_number, "active": department.active},
        )
    flash(f"承办单位 {name} 已保存", "info")
    return redirect(url_for("admin_org.departments"))


# Queues and skills -------------------------------------------------------------------------------
@org_bp.get("/queues")
@require_role(Role.ADMIN)
def queues() -> ResponseReturnValue:
    store: AcdStore = current_app.extensions["hotline"]["acd"]
    waiting = store.queue_stats()
    with _db()() as session:
        seats = list(session.scalars(select(Seat).where(Seat.active.is_(True)).order_by(Seat.extension)))
        names = queue_names(seats)
        return render_template(
            "desk/admin_queues.html",
            seats=seats,
            queues=[(q, QUEUE_LABELS.get(q, q), waiting.get(q, {}).get("waiting", 0)) for q in names],
            levels=LEVELS,
        )


@org_bp.post("/queues/<extension>")
@require_role(Role.ADMIN)
def save_skills(extension: str) -> ResponseReturnValue:
    skills: dict[str, int] = {}
    for key, value in request.form.items():
        if key.startswith("skill-") and value:
            if not value.isdigit() or int(value) not in LEVELS:
                flash("技能等级无效", "error")
                return redirect(url_for("admin_org.queues"))
            skills[key.removeprefix("skill-")] = int(value)
    if not skills:
        flash(f"座席 {extension} 至少要服务一个队列", "error")
        return redirect(url_for("admin_org.queues"))
    with transaction(_db()) as session:
        seat = session.scalar(select(Seat).where(Seat.extension == extension))
        if seat is None or not set(skills) <= set(queue_names([seat])):
            flash("座席或队列不存在", "error")
            return redirect(url_for("admin_org.queues"))
        seat.skills, agent_id = skills, seat.agent_id
        _audit(session, "seat.skills", "seat", extension, {"skills": skills})
    store: AcdStore = current_app.extensions["hotline"]["acd"]
    try:
        store.seat(extension)
    except KeyError:
        pass  # not in the live state yet: its next sign-in reads the new skills
    else:
        store.upsert_seat(extension, skills, agent_id=agent_id)  # routing uses them at once
    flash(f"座席 {extension} 的技能已保存", "info")
    return redirect(url_for("admin_org.queues"))


# Holidays ----------------------------------------------------------------------------------------
@org_bp.get("/holidays")
@require_role(Role.ADMIN)
def holidays() -> ResponseReturnValue:
    with _db()() as session:
        days = session.scalars(select(CalendarDay).order_by(CalendarDay.day.desc())).all()
        return render_template(
            "desk/admin_holidays.html",
            days=days,
            national={d.day: is_workday(d.day) for d in days},
            upcoming=_national_exceptions(utcnow().astimezone(LOCAL).date(), 90),
        )


def _national_exceptions(start: dt.date, days: int) -> list[tuple[dt.date, bool]]:
    """Days of the national calendar that break the Monday-Friday rule (holidays, 调休 workdays)."""
    found = []
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        workday = is_workday(day)
        if workday != (day.weekday() < 5):
            found.append((day, workday))
    return found


@org_bp.post("/holidays")
@require_role(Role.ADMIN)
def save_holiday() -> ResponseReturnValue:
    form = request.form
    try:
        day = dt.date.fromisoformat(form.get("day", ""))
    except ValueError:
        flash("请选择日期", "error")
        return redirect(url_for("admin_org.holidays"))
    choice, note = form.get("workday", ""), form.get("note", "").strip()
    if choice not in ("1", "0", "remove"):
        flash("请选择工作日或休息日", "error")
        return redirect(url_for("admin_org.holidays"))
    if len(note) > 100:
        flash("说明不超过100字", "error")
        return redirect(url_for("admin_org.holidays"))
    with transaction(_db()) as session:
        entry = session.get(CalendarDay, day)
        if choice == "remove":
            if entry is not None:
                session.delete(entry)
            _audit(session, "calendar.remove", "calendar_day", day.isoformat(), {})
            flash(f"{day.isoformat()} 已恢复为国家日历", "info")
            return redirect(url_for("admin_org.holidays"))
        if entry is None:
            entry = CalendarDay(day=day, workday=choice == "1")
            session.add(entry)
        entry.workday, entry.note, entry.changed_by_id = choice == "1", note, current_user.id
        _audit(
            session, "calendar.set", "calendar_day", day.isoformat(), {"workday": entry.workday, "note": note}
        )
    flash(
        f"{day.isoformat()} 已设为{'工作日' if choice == '1' else '休息日'}（新派工单的时限按此计算）", "info"
    )
    return redirect(url_for("admin_org.holidays"))
