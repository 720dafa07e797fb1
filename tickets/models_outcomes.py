"""SQL rows of the outcome side: notifications outbox, ratings, revisits, SLA marks, Open311, portal."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hotline.accounts import str_enum
from hotline.db import Base, UTCDateTime, utcnow


class Audience(enum.StrEnum):
    CITIZEN = "citizen"
    DEPARTMENT = "department"
    CENTRE = "centre"  # the 12345 centre's supervisors


class Medium(enum.StrEnum):
    WEBHOOK = "webhook"  # SMS gateway and department systems, HMAC-signed JSON
    EMAIL = "email"


class NotificationState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # given up; an operator may retry it


class Notification(Base):
    """One message to one recipient over one medium, written in the transaction of its cause."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # e.g. ticket.accepted
    audience: Mapped[Audience] = mapped_column(str_enum(Audience))
    medium: Mapped[Medium] = mapped_column(str_enum(Medium))
    # A phone number, an e-mail address, a department code; "" for the centre's configured address.
    recipient: Mapped[str] = mapped_column(String(200), default="")
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None, index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), default=None)
    subject: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Sent with every attempt, so a receiver drops the copy of a delivery it already took.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[NotificationState] = mapped_column(
        str_enum(NotificationState), default=NotificationState.PENDING, index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # A sender holds the row until then; a sender that died lets it go when the time passes.
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    # When retrying stops; None: the sender's window from `created_at` (a manual retry sets it anew).
    give_up_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")


class NotificationAttempt(Base):
    """One try to deliver a notification, kept so that every attempt can be shown."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class Satisfaction(enum.StrEnum):
    """好差评: the five levels of the government service rating, best first."""

    VERY_SATISFIED = "very_satisfied"  # 非常满意
    SATISFIED = "satisfied"  # 满意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本满意
    DISSATISFIED = "dissatisfied"  # 不满意
    VERY_DISSATISFIED = "very_dissatisfied"  # 非常不满意


class Rating(Base):
    """The citizen's rating of one outcome (a reply or a direct answer) of a ticket."""

    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    # One rating per outcome: a double submit or a second channel finds it taken.
    outcome_event_id: Mapped[int] = mapped_column(ForeignKey("ticket_events.id"), unique=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), default=None)
    level: Mapped[Satisfaction] = mapped_column(str_enum(Satisfaction))
    channel: Mapped[str] = mapped_column(String(16))  # portal, ivr, phone, sms
    comment: Mapped[str] = mapped_column(Text, default="")
    rated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RevisitState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"


class RevisitTask(Base):
    """回访 due for an approved reply or a direct answer, from the next working day on."""

    __tablename__ = "revisit_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    outcome_event_id: Mapped[int] = mapped_column(ForeignKey("ticket_events.id"), unique=True)
    due_on: Mapped[dt.date] = mapped_column(Date, index=True)
    state: Mapped[RevisitState] = mapped_column(str_enum(RevisitState), default=RevisitState.PENDING)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    rating_id: Mapped[int | None] = mapped_column(ForeignKey("ratings.id"), default=None)


class SlaMark(Base):
    """That a reminder or supervision was done for one deadline of one ticket (never twice)."""

    __tablename__ = "sla_marks"
    __table_args__ = (UniqueConstraint("ticket_id", "kind", "deadline_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # urge_sign, urge_reply, supervise_sign, supervise_reply
    deadline_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Open311Client(Base):
    """An Open311 client application's api_key; only its sha256 is stored."""

    __tablename__ = "open311_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    contact: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class Open311Request(Base):
    """What an Open311 POST carried beyond the ticket itself (location, contact, media)."""

    __tablename__ = "open311_requests"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("open311_clients.id"), index=True)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    long: Mapped[float | None] = mapped_column(Float, default=None)
    address_id: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    device_id: Mapped[str] = mapped_column(String(100), default="")
    account_id: Mapped[str] = mapped_column(String(100), default="")
    first_name: Mapped[str] = mapped_column(String(64), default="")
    last_name: Mapped[str] = mapped_column(String(64), default="")
    media_url: Mapped[str] = mapped_column(String(500), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PortalSubmission(Base):
    """The public form's one-time nonce and the ticket it made: a double submit finds it."""

    __tablename__ = "portal_submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
