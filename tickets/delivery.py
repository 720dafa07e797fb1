"""Delivering the outbox: HMAC-signed webhooks and SMTP e-mail, retried with back-off, every attempt kept.

`deliver_due` (run by the RQ job `tickets.jobs.deliver_notifications`) claims due rows one at a
time with a short lease, sends outside any transaction, then records the attempt. A sender that
dies mid-way loses its lease and the row is sent again with the same `Idempotency-Key`, so a
receiver that remembers keys takes it once. Transient failures back off from 30 s doubling to
30 min, until the give-up window (48 h) ends; a permanent refusal (a 4xx, a refused address)
fails at once. Failed rows stay visible with their error and can be retried (`retry`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction, utcnow
from tickets.models_outcomes import Audience, Medium, Notification, NotificationAttempt, NotificationState

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hotline-Signature"
TIMESTAMP_HEADER = "X-Hotline-Timestamp"
LEASE = dt.timedelta(minutes=2)
GIVE_UP_AFTER = dt.timedelta(hours=48)
FIRST_BACKOFF = dt.timedelta(seconds=30)
MAX_BACKOFF = dt.timedelta(minutes=30)
# A receiver asking us to wait or timing out may take it later; other 4xx answers will not change.
_TRANSIENT_HTTP = {408, 425, 429}


@dataclass(frozen=True)
class DeliveryConfig:
    """Where notifications go; read from the settings (`notify_*`), empty values mean "not set up"."""

    webhook_url: str = ""
    webhook_secret: str = ""
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = ""
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_security: str = "none"  # none, starttls or ssl
    centre_email: str = ""
    timeout_s: float = 10.0
    give_up_after: dt.timedelta = GIVE_UP_AFTER

    @classmethod
    def from_settings(cls, settings: object) -> DeliveryConfig:
        """The `notify_*` settings; absent ones (an older settings object) count as not set up."""

        def value(name: str, default: Any = "") -> Any:
            found: Any = getattr(settings, f"notify_{name}", None)
            if found is not None and hasattr(found, "get_secret_value"):
                found = found.get_secret_value()
            return default if found is None else found

        return cls(
            webhook_url=str(value("webhook_url")),
            webhook_secret=str(value("webhook_secret")),
            smtp_host=str(value("smtp_host")),
            smtp_port=int(value("smtp_port", 25)),
            smtp_from=str(value("smtp_from")),
            smtp_username=str(value("smtp_username")),
            smtp_password=str(value("smtp_password")),
            smtp_security=str(value("smtp_security", "none")),
            centre_email=str(value("centre_email")),
        )

    def missing(self, medium: Medium) -> str:
        """Why `medium` cannot be used (Chinese, shown to operators), or "" when it can."""
        if medium is Medium.WEBHOOK and not (self.webhook_url and self.webhook_secret):
            return "未配置 webhook（notify_webhook_url 与 notify_webhook_secret）"
        if medium is Medium.EMAIL and not (self.smtp_host and self.smtp_from):
            return "未配置邮件服务器（notify_smtp_host 与 notify_smtp_from）"
        return ""


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status_code = status_code


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>` (the timestamp stops replays)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str, timestamp: str, body: bytes, header: str, now: float | None = None, tolerance_s: int = 300
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(signature(secret, timestamp, body), header)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would be re-sent as a GET without its body: treat it as an answer instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def post_webhook(config: DeliveryConfig, row: Notification) -> int:
    """POST the row's payload, signed; returns the HTTP status or raises `DeliveryError`."""
    body = json.dumps(row.payload, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(
        config.webhook_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "hotline12345-notify/1",
            "Idempotency-Key": row.idempotency_key,
            "X-Hotline-Event": row.kind,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(config.webhook_secret, timestamp, body),
        },
    )
    try:
        with _opener.open(request, timeout=config.timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()  # it holds the connection of the answer
        permanent = 300 <= error.code < 500 and error.code not in _TRANSIENT_HTTP
        message = f"HTTP {error.code} {error.reason}"
        raise DeliveryError(message, permanent=permanent, status_code=error.code) from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DeliveryError(f"连接失败：{reason}", permanent=False) from error


def send_email(config: DeliveryConfig, row: Notification, to: str) -> None:
    message = EmailMessage()
    message["From"] = config.smtp_from
    message["To"] = to
    message["Subject"] = row.subject or "12345 热线通知"
    message["Date"] = format_datetime(row.created_at)
    # The same id on every attempt: mail systems and people can see a repeat for what it is.
    message["Message-ID"] = f"<{row.idempotency_key}@hotline12345>"
    message["X-Idempotency-Key"] = row.idempotency_key
    message.set_content(row.body)
    try:
        if config.smtp_security == "ssl":
            context = ssl.create_default_context()
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                config.smtp_host, config.smtp_port, timeout=config.timeout_s, context=context
            )
        else:
            smtp = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout_s)
        with smtp:
            if config.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if config.smtp_username:
                smtp.login(config.smtp_username, config.smtp_password)
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        raise DeliveryError(f"收件人被拒绝：{to}", permanent=all(c >= 500 for c in codes)) from error
    except smtplib.SMTPResponseException as error:
        raw = error.smtp_error
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        raise DeliveryError(f"SMTP {error.smtp_code} {text}", permanent=error.smtp_code >= 500) from error
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryError(f"邮件服务器连接失败：{error}", permanent=False) from error


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the `attempts`-th failed try: 30 s, 1 min, 2 min, ... at most 30 min."""
    wait: dt.timedelta = FIRST_BACKOFF * 2 ** min(max(attempts - 1, 0), 16)
    return min(wait, MAX_BACKOFF)


@dataclass
class Report:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    # Rows waiting because their medium is not set up, by medium, with the reason.
    not_configured: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.not_configured:
            return "not_configured: " + "; ".join(f"{m}: {why}" for m, why in self.not_configured.items())
        return "ok"


def _usable(config: DeliveryConfig) -> list[Any]:
    """SQL conditions for rows that can be sent with this configuration."""
    media = [m for m in Medium if not config.missing(m)]
    conditions: list[Any] = [Notification.medium.in_(media)]
    if not config.centre_email:
        conditions.append(Notification.audience != Audience.CENTRE)
    return conditions


def deliver_due(
    factory: sessionmaker[Session], config: DeliveryConfig, now: dt.datetime | None = None, limit: int = 200
) -> Report:
    """Try every due notification once; returns what happened."""
    fixed = now
    now = now or utcnow()
    report = Report()
    _give_up_unsendable(factory, config, now, report)
    with factory() as session:
        due = select(Notification.id).where(
            Notification.state == NotificationState.PENDING,
            Notification.next_attempt_at <= now,
            or_(Notification.locked_until.is_(None), Notification.locked_until < now),
            *_usable(config),
        )
        ids = list(session.scalars(due.order_by(Notification.next_attempt_at, Notification.id).limit(limit)))
    for notification_id in ids:
        # The real clock for each row (a batch takes a while); a given `now` is the clock in tests.
        _deliver_one(factory, config, notification_id, fixed or utcnow(), report)
    return report


def _claim(factory: sessionmaker[Session], notification_id: int, now: dt.datetime) -> Notification | None:
    with transaction(factory) as session:
        claimed = session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.state == NotificationState.PENDING,
                or_(Notification.locked_until.is_(None), Notification.locked_until < now),
            )
            .values(locked_until=now + LEASE)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None  # another sender has it
        return session.get(Notification, notification_id)


def _deliver_one(
    factory: sessionmaker[Session],
    config: DeliveryConfig,
    notification_id: int,
    now: dt.datetime,
    report: Report,
) -> None:
    row = _claim(factory, notification_id, now)
    if row is None:
        return
    started = time.monotonic()
    error: DeliveryError | None = None
    status_code: int | None = None
    try:
        if row.medium is Medium.WEBHOOK:
            status_code = post_webhook(config, row)
        else:
            send_email(config, row, row.recipient or config.centre_email)
    except DeliveryError as failure:
        error, status_code = failure, failure.status_code
    took = int((time.monotonic() - started) * 1000)
    with transaction(factory) as session:
        stored = session.get_one(Notification, notification_id)
        stored.attempts += 1
        stored.locked_until = None
        session.add(
            NotificationAttempt(
                notification_id=notification_id,
                at=now,
                ok=error is None,
                status_code=status_code,
                error=str(error) if error else "",
                duration_ms=took,
            )
        )
        if error is None:
            stored.state, stored.delivered_at, stored.last_error = NotificationState.DELIVERED, now, ""
            report.delivered += 1
            return
        stored.last_error = str(error)
        give_up_at = stored.give_up_at or stored.created_at + config.give_up_after
        retry_at = now + backoff(stored.attempts)
        if error.permanent or retry_at > give_up_at:
            stored.state = NotificationState.FAILED
            report.failed += 1
            log.warning("notification %s failed for good: %s", notification_id, error)
        else:
            stored.next_attempt_at = retry_at
            report.retrying += 1


def _give_up_unsendable(
    factory: sessionmaker[Session], config: DeliveryConfig, now: dt.datetime, report: Report
) -> None:
    """Rows whose medium is not set up wait; past their window they fail, saying why."""
    waiting: list[tuple[Medium, Any, str]] = []
    for medium in Medium:
        why = config.missing(medium)
        if why:
            waiting.append((medium, Notification.medium == medium, why))
        elif medium is Medium.EMAIL and not config.centre_email:
            centre = (Notification.medium == medium) & (Notification.audience == Audience.CENTRE)
            waiting.append((medium, centre, "未配置中心邮箱（notify_centre_email）"))
    for medium, condition, why in waiting:
        pending = (condition, Notification.state == NotificationState.PENDING)
        with transaction(factory) as session:
            if session.scalar(select(func.count()).where(*pending)):
                report.not_configured[medium.value] = why
            expired = or_(
                Notification.give_up_at < now,
                Notification.give_up_at.is_(None) & (Notification.created_at < now - config.give_up_after),
            )
            session.execute(
                update(Notification)
                .where(*pending, expired)
                .values(state=NotificationState.FAILED, last_error=f"{why}，超过重试期限未能发送")
            )


def retry(session: Session, notification_id: int, now: dt.datetime | None = None) -> Notification:
    """Send a failed notification again, with a fresh give-up window; its history stays."""
    now = now or utcnow()
    row = session.get_one(Notification, notification_id)
    if row.state is NotificationState.DELIVERED:
        raise ValueError("notification already delivered")
    row.state, row.next_attempt_at, row.locked_until = NotificationState.PENDING, now, None
    row.give_up_at = now + GIVE_UP_AFTER
    return row
