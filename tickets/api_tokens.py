"""Department API tokens and idempotency records: issue, revoke, authenticate, replay.

A token is shown once when issued (`issue_token`, meant to be called from the CLI); only its
sha256 is stored (a random 256-bit token needs no slow hash). Each department system request
that changes something carries an `Idempotency-Key`; its first successful answer is stored in
the same transaction as the change and replayed for the same key afterwards.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hotline.accounts import audit
from hotline.db import utcnow
from tickets.models import ApiToken, Department, IdempotencyRecord

TOKEN_PREFIX = "dpt_"
# Writing last_used_at on every call would turn reads into writes; once a minute is enough.
_TOUCH_EVERY = dt.timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, department_code: str, name: str, *, actor_id: int | None = None) -> str:
    """A new token for the department's system; returns the token (shown once, never stored)."""
    department = session.scalar(select(Department).where(Department.code == department_code))
    if department is None or not department.active:
        raise LookupError(f"no active department with code {department_code!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(department_id=department.id, name=name, prefix=token[:12], token_hash=_hash(token))
    session.add(record)
    session.flush()
    audit(
        session,
        "api_token.issue",
        actor_id=actor_id,
        target_type="department",
        target_id=department.code,
        detail={"token_id": record.id, "prefix": record.prefix, "name": name},
        source="cli",
    )
    return token


def revoke_token(session: Session, prefix: str, *, actor_id: int | None = None) -> int:
    """Revoke the tokens starting with `prefix` (as listed); returns how many were revoked."""
    now = utcnow()
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.prefix == prefix[:12], ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = now
        audit(session, "api_token.revoke", actor_id=actor_id, target_type="api_token", target_id=token.id)
    return len(tokens)


def list_tokens(session: Session) -> list[tuple[ApiToken, str]]:
    """Every token with its department's code, newest first."""
    query = (
        select(ApiToken, Department.code)
        .join(Department, Department.id == ApiToken.department_id)
        .order_by(ApiToken.id.desc())
    )
    return [(token, code) for token, code in session.execute(query)]


def authenticate(session: Session, token: str, now: dt.datetime | None = None) -> ApiToken | None:
    """The live token record for `token` (its department active), else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    record = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))
    if record is None or record.revoked_at is not None:
        return None
    department = session.get(Department, record.department_id)
    if department is None or not department.active:
        return None
    now = now or utcnow()
    if record.last_used_at is None or now - record.last_used_at > _TOUCH_EVERY:
        record.last_used_at = now
    return record


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: dict[str, Any]
    same_request: bool


def replay(session: Session, department_id: int, key: str, fingerprint: str) -> Replay | None:
    """The stored answer for this key, if there is one."""
    record = session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.department_id == department_id, IdempotencyRecord.key == key
        )
    )
    if record is None:
        return None
    return Replay(record.status_code, record.body, record.request_hash == fingerprint)


def remember(
    session: Session, department_id: int, key: str, fingerprint: str, status_code: int, body: dict[str, Any]
) -> None:
    """Store the answer in the current transaction (a concurrent twin fails on the unique key)."""
    session.add(
        IdempotencyRecord(
            department_id=department_id,
            key=key,
            request_hash=fingerprint,
            status_code=status_code,
            body=body,
        )
    )
    session.flush()
