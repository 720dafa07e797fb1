"""Who may do what: users, roles, password hashing and the audit trail.

An infra module like `hotline.db`: every domain package may import it (tickets record who
signed a ticket, acd which agent sat at a seat), and it imports only `hotline.db`.
Passwords are hashed with Argon2id (argon2-cffi); the plain text is never stored.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, current_app
from flask_login import current_user
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, Session, mapped_column

from hotline.db import Base, UTCDateTime, utcnow

_hasher = PasswordHasher()


class Role(enum.StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"
    DEPARTMENT = "department"


def str_enum(enum_cls: type[enum.Enum]) -> SAEnum:
    """A string-valued enum column stored as VARCHAR (no native type, easy to extend)."""
    return SAEnum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[Role] = mapped_column(str_enum(Role))
    # Department staff belong to exactly one department and see only its tickets.
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), default=None)
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)

    def set_password(self, password: str) -> None:
        self.password_hash = hash_password(password)

    def check_password(self, password: str) -> bool:
        return verify_password(self.password_hash, password)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class AuditEntry(Base):
    """One line of the append-only audit trail: who did what to which record, from where."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(64), default="")


def audit(
    session: Session,
    action: str,
    *,
    actor_id: int | None = None,
    target_type: str = "",
    target_id: str | int = "",
    detail: dict[str, Any] | None = None,
    source: str = "",
) -> AuditEntry:
    """Append an audit entry to the session's transaction (committed with the change itself)."""
    entry = AuditEntry(
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail=detail or {},
        source=source,
    )
    session.add(entry)
    return entry


F = TypeVar("F", bound=Callable[..., Any])


def require_role(*roles: Role) -> Callable[[F], F]:
    """A view only these roles may open: others get 403, anonymous users the login page."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate
