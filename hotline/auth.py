"""Logging in and out: sessions, lockout, rate limits, forced password change, audit.

Every user (agent, supervisor, administrator, department staff) logs in at `/login`. Passwords
are Argon2id hashes; five wrong passwords lock the account for 15 minutes; attempts are rate
limited per address; a first-login password must be changed before anything else; every
login, failure, lockout and password change is in the audit trail. The session id carries a
fingerprint of the password hash, so changing a password ends every other session.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import COOKIE_NAME, LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from hotline.accounts import Role, User, audit, hash_password
from hotline.db import transaction, utcnow

MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)
MIN_PASSWORD = 10
# Where each role lands after logging in (pages that later issues add override these).
HOME = {
    Role.AGENT: "agent.desk",
    Role.SUPERVISOR: "wallboard.wallboard",
    Role.ADMIN: "desk.index",
    Role.DEPARTMENT: "dept.index",
}

bp = Blueprint("auth", __name__)


@dataclass
class SessionUser:
    """The logged-in user as Flask-Login sees it: a detached copy, safe across threads."""

    id: int
    username: str
    display_name: str
    role: Role
    department_id: int | None
    must_change_password: bool
    fingerprint: str

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}:{self.fingerprint}"

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _session_user(user: User) -> SessionUser:
    return SessionUser(
        user.id,
        user.username,
        user.display_name,
        user.role,
        user.department_id,
        user.must_change_password,
        _fingerprint(user),
    )


class LoginForm(FlaskForm):  # type: ignore[misc]
    username = StringField("用户名", validators=[DataRequired(message="请输入用户名"), Length(max=64)])
    password = PasswordField("密码", validators=[DataRequired(message="请输入密码"), Length(max=256)])


class PasswordForm(FlaskForm):  # type: ignore[misc]
    current = PasswordField("当前密码", validators=[DataRequired(message="请输入当前密码")])
    new = PasswordField(
        "新密码",
        validators=[
            DataRequired(message="请输入新密码"),
            Length(min=MIN_PASSWORD, max=256, message=f"新密码至少 {MIN_PASSWORD} 个字符"),
        ],
    )
    confirm = PasswordField("确认新密码", validators=[EqualTo("new", message="两次输入的新密码不一致")])


class _LoginManager(LoginManager):  # type: ignore[misc]
    """Flask-Login with its "strong" session protection kept for sessions that hold a login.

    A citizen's portal session (a CSRF token, the tickets looked up) holds none. Checked anyway,
    Flask-Login found no fingerprint in it, marked it for clearing and so re-signed and re-sent
    the session cookie, and a remember-me deletion, on every public request (a quarter of a
    look-up's cost; docs/benchmarks.md). Sessions with a login, or a remember-me cookie, are
    checked exactly as before.
    """

    def _session_protection_failed(self) -> bool:
        remember = current_app.config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME)
        if "_user_id" not in session and remember not in request.cookies:
            return False
        return bool(super()._session_protection_failed())


def _db() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    return factory


def _safe_next(target: str | None) -> str | None:
    # Only local paths: an open redirect would let a phishing link bounce through our login.
    if not target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc and target.startswith("/") else None


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    if form.validate_on_submit():
        now = utcnow()
        username = form.username.data.strip()
        with transaction(_db()) as session:
            user = session.scalar(select(User).where(func.lower(User.username) == username.lower()))
            source = request.remote_addr or ""
            if user is None or not user.active:
                audit(session, "login.failed", detail={"username": username[:64]}, source=source)
                flash("用户名或密码错误", "error")
            elif user.locked_until is not None and user.locked_until > now:
                audit(session, "login.locked", actor_id=user.id, source=source)
                flash("账号已被临时锁定，请 15 分钟后再试或联系管理员", "error")
            elif not user.check_password(form.password.data):
                user.failed_logins += 1
                if user.failed_logins >= MAX_FAILURES:
                    user.locked_until = now + LOCKOUT
                    user.failed_logins = 0
                    audit(session, "login.lockout", actor_id=user.id, source=source)
                    flash("密码错误次数过多，账号已锁定 15 分钟", "error")
                else:
                    audit(session, "login.failed", actor_id=user.id, source=source)
                    flash("用户名或密码错误", "error")
            else:
                user.failed_logins = 0
                user.locked_until = None
                user.last_login_at = now
                audit(session, "login", actor_id=user.id, source=source)
                login_user(_session_user(user))
                if user.must_change_password:
                    return redirect(url_for("auth.password"))
                return redirect(_safe_next(request.args.get("next")) or url_for(HOME[user.role]))
    return render_template("auth/login.html", form=form), (200 if request.method == "GET" else 401)


@bp.post("/logout")
@login_required  # type: ignore[untyped-decorator]
def logout() -> ResponseReturnValue:
    with transaction(_db()) as session:
        audit(session, "logout", actor_id=current_user.id, source=request.remote_addr or "")
    logout_user()
    flash("您已安全退出", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required  # type: ignore[untyped-decorator]
def password() -> ResponseReturnValue:
    form = PasswordForm()
    if form.validate_on_submit():
        with transaction(_db()) as session:
            user = session.get(User, current_user.id)
            if user is None or not user.check_password(form.current.data):
                flash("当前密码不正确", "error")
            elif form.new.data.lower() == user.username.lower() or form.new.data == form.current.data:
                flash("新密码不能与用户名或当前密码相同", "error")
            else:
                user.password_hash = hash_password(form.new.data)
                user.must_change_password = False
                audit(session, "password.change", actor_id=user.id, target_type="user", target_id=user.id)
                login_user(_session_user(user))  # a fresh fingerprint: other sessions end
                flash("密码已修改", "info")
                return redirect(url_for(HOME[user.role]))
    return render_template("auth/password.html", form=form)


def init_limiter(app: Flask, storage_uri: str) -> Limiter:
    """The app's rate limiter (moving window, in Redis), also for the public portal's and Open311's
    limits, which find it in `app.extensions["hotline"]["limiter"]`."""
    limiter = Limiter(get_remote_address, app=app, storage_uri=storage_uri, strategy="moving-window")
    app.extensions["hotline"]["limiter"] = limiter
    return limiter


def init_auth(app: Flask, factory: sessionmaker[Session], storage_uri: str) -> Limiter:
    """Wire Flask-Login, the login blueprint, the rate limiter and the password-change gate."""
    manager = _LoginManager()
    manager.init_app(app)
    manager.login_view = "auth.login"
    manager.login_message = "请先登录"
    manager.session_protection = "strong"

    @manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(user_id: str) -> SessionUser | None:
        raw_id, _, fingerprint = user_id.partition(":")
        with factory() as session:
            user = session.get(User, int(raw_id)) if raw_id.isdigit() else None
            if user is None or not user.active or _fingerprint(user) != fingerprint:
                return None
            return _session_user(user)

    limiter = init_limiter(app, storage_uri)
    app.register_blueprint(bp)
    # The limit checks run inside the decorated function, so the registered view is replaced.
    app.view_functions["auth.login"] = limiter.limit(
        "10 per minute", methods=["POST"], error_message="尝试过于频繁，请稍后再试"
    )(login)

    @app.before_request
    def first_login_gate() -> Any:
        # Nothing else until a first-login password has been changed.
        if (
            current_user.is_authenticated
            and current_user.must_change_password
            and request.endpoint not in {"auth.password", "auth.logout", "static", "healthz"}
        ):
            return redirect(url_for("auth.password"))
        return None

    return limiter
