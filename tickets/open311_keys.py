"""Open311 api_keys for client applications: issued once (shown, never stored), revoked, checked.

Only the sha256 of a key is stored: a random 256-bit key needs no slow hash. Keys are meant to be
issued from the CLI or an admin page (`issue_api_key`), each to a named client with a contact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from hotline.accounts import audit
from hotline.db import utcnow
from tickets.models_outcomes import Open311Client

KEY_PREFIX = "o311_"
# Writing last_used_at on every POST would add a write per request; once a minute is enough.
_TOUCH_EVERY = dt.timedelta(minutes=1)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_api_key(session: Session, name: str, contact: str = "", *, actor_id: int | None = None) -> str:
    """A new api_key for the client `name`; returns the key (show it once, it is not kept)."""
    if not name.strip():
        raise ValueError("an Open311 client needs a name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    client = Open311Client(name=name.strip(), contact=contact.strip(), prefix=key[:12], key_hash=_hash(key))
    session.add(client)
    session.flush()
    audit(
        session,
        "open311_key.issue",
        actor_id=actor_id,
        target_type="open311_client",
        target_id=client.id,
        detail={"name": client.name, "prefix": client.prefix},
        source="cli",
    )
    return key


def revoke_api_key(session: Session, prefix: str, *, actor_id: int | None = None) -> int:
    """Revoke the live keys starting with `prefix` (as listed); returns how many."""
    now = utcnow()
    clients = session.scalars(
        select(Open311Client).where(Open311Client.prefix == prefix[:12], Open311Client.revoked_at.is_(None))
    ).all()
    for client in clients:
        client.revoked_at = now
        audit(
            session,
            "open311_key.revoke",
            actor_id=actor_id,
            target_type="open311_client",
            target_id=client.id,
        )
    return len(clients)


def list_clients(session: Session) -> list[Open311Client]:
    return list(session.scalars(select(Open311Client).order_by(Open311Client.id.desc())))


def authenticate(session: Session, key: str, now: dt.datetime | None = None) -> Open311Client | None:
    """The live client holding `key`, else None."""
    if not key.startswith(KEY_PREFIX):
        return None
    client = session.scalar(select(Open311Client).where(Open311Client.key_hash == _hash(key)))
    if client is None or client.revoked_at is not None:
        return None
    now = now or utcnow()
    if client.last_used_at is None or now - client.last_used_at > _TOUCH_EVERY:
        client.last_used_at = now
    return client
