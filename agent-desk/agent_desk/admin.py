"""Administration: users and seats. Every change is audited; passwords are set once and shown once."""

from __future__ import annotations

import re
import secrets

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Seat
from hotline.accounts import Role, User, audit, hash_password, require_role
from hotline.db import transaction
from tickets.models import Department

admin_bp = Blueprint("admin", __name__, template_folder="templates", url_prefix="/admin")

ROLE_LABELS = {
    Role.ADMIN: "管理员",
    Role.SUPERVISOR: "班长",
    Role.AGENT: "话务员",
    Role.DEPARTMENT: "承办单位",
}
SKILL_LABELS = {"general": "综合", "enterprise": "涉企专席", "dialect": "方言专席"}
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
EXTENSION = re.compile(r"^[0-9]{3,8}$")


def _db() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    return factory


def first_password() -> str:
    """A readable one-time password (no 0/O, 1/l/I), to be changed at first login."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3))


@admin_bp.get("/")
@require_role(Role.ADMIN)
def index() -> ResponseReturnValue:
    with _db()() as session:
        users = session.scalars(select(User).order_by(User.role, User.username)).all()
        seats = session.scalars(select(Seat).order_by(Seat.extension)).all()
        departments = session.scalars(select(Department).order_by(Department.id)).all()
        names = {d.id: d.name for d in departments}
        agents = {u.id: u.display_name for u in users}
        return render_template(
            "desk/admin.html",
            users=users,
            seats=seats,
            departments=departments,
            department_names=names,
            agent_names=agents,
            roles=ROLE_LABELS,
            skills=SKILL_LABELS,
        )


@admin_bp.post("/users")
@require_role(Role.ADMIN)
def create_user() -> ResponseReturnValue:
    form = request.form
    username = form.get("username", "").strip().lower()
    display_name = form.get("display_name", "").strip()[:100]
    try:
        role = Role(form.get("role", ""))
    except ValueError:
        role = None
    department_id = int(form["department_id"]) if form.get("department_id", "").isdigit() else None
    if not USERNAME.match(username):
        flash("用户名需为 3–64 位小写字母、数字或 . _ -", "error")
    elif not display_name or role is None:
        flash("请填写姓名并选择角色", "error")
    elif role is Role.DEPARTMENT and department_id is None:
        flash("承办单位用户必须选择所属单位", "error")
    else:
        password = first_password()
        with transaction(_db()) as session:
            if session.scalar(select(User).where(User.username == username)) is not None:
                flash(f"用户名 {username} 已存在", "error")
                return redirect(url_for("admin.index"))
            user = User(
                username=username,
                display_name=display_name,
                role=role,
                department_id=department_id if role is Role.DEPARTMENT else None,
                password_hash=hash_password(password),
                must_change_password=True,
            )
            session.add(user)
            session.flush()
            audit(
                session,
                "user.create",
                actor_id=current_user.id,
                target_type="user",
                target_id=user.id,
                detail={"username": username, "role": role.value},
                source=request.remote_addr or "",
            )
        flash(f"已创建用户 {username}，初始密码：{password}（仅显示一次，首次登录须修改）", "info")
    return redirect(url_for("admin.index"))


@admin_bp.post("/users/<int:user_id>/reset")
@require_role(Role.ADMIN)
def reset_password(user_id: int) -> ResponseReturnValue:
    password = first_password()
    with transaction(_db()) as session:
        user = session.get(User, user_id)
        if user is None:
            flash("用户不存在", "error")
            return redirect(url_for("admin.index"))
        user.password_hash = hash_password(password)
        user.must_change_password = True
        user.failed_logins = 0
        user.locked_until = None
        audit(
            session,
            "user.reset_password",
            actor_id=current_user.id,
            target_type="user",
            target_id=user.id,
            source=request.remote_addr or "",
        )
        username = user.username
    flash(f"已重置 {username} 的密码：{password}（仅显示一次）", "info")
    return redirect(url_for("admin.index"))


@admin_bp.post("/users/<int:user_id>/active")
@require_role(Role.ADMIN)
def set_active(user_id: int) -> ResponseReturnValue:
    active = request.form.get("active") == "1"
    if user_id == current_user.id and not active:
        flash("不能停用自己的账号", "error")
        return redirect(url_for("admin.index"))
    with transaction(_db()) as session:
        user = session.get(User, user_id)
        if user is not None:
            user.active = active
            audit(
                session,
                "user.enable" if active else "user.disable",
                actor_id=current_user.id,
                target_type="user",
                target_id=user.id,
                source=request.remote_addr or "",
            )
    flash("已启用账号" if active else "已停用账号（其登录会话随即失效）", "info")
    return redirect(url_for("admin.index"))


@admin_bp.post("/seats")
@require_role(Role.ADMIN)
def save_seat() -> ResponseReturnValue:
    form = request.form
    extension = form.get("extension", "").strip()
    skills = {s: 1 for s in form.getlist("skills") if s in SKILL_LABELS}
    agent_id = int(form["agent_id"]) if form.get("agent_id", "").isdigit() else None
    if not EXTENSION.match(extension):
        flash("分机号需为 3–8 位数字", "error")
        return redirect(url_for("admin.index"))
    if not skills:
        flash("请至少选择一项技能", "error")
        return redirect(url_for("admin.index"))
    with transaction(_db()) as session:
        if agent_id is not None:
            agent = session.get(User, agent_id)
            if agent is None or agent.role not in (Role.AGENT, Role.SUPERVISOR):
                flash("座席只能分配给话务员或班长", "error")
                return redirect(url_for("admin.index"))
            for other in session.scalars(
                select(Seat).where(Seat.agent_id == agent_id, Seat.extension != extension)
            ):
                other.agent_id = None  # one seat per agent
        seat = session.scalar(select(Seat).where(Seat.extension == extension))
        created = seat is None
        if seat is None:
            seat = Seat(extension=extension, name=f"{extension}座席", sip_password=secrets.token_urlsafe(18))
            session.add(seat)
        seat.skills = skills
        seat.agent_id = agent_id
        session.flush()
        audit(
            session,
            "seat.create" if created else "seat.update",
            actor_id=current_user.id,
            target_type="seat",
            target_id=extension,
            detail={"skills": sorted(skills), "agent_id": agent_id},
            source=request.remote_addr or "",
        )
    flash(f"座席 {extension} 已{'创建' if created else '更新'}", "info")
    return redirect(url_for("admin.index"))
