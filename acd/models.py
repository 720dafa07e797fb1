"""Seats, seat state history and call detail records (CDRs), as SQL records.

Live seat and queue state lives in Redis; these rows are the durable history the statistics
(service level, ASA, AHT, occupancy) are computed from.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hotline.accounts import str_enum
from hotline.db import Base, UTCDateTime, utcnow


class Seat(Base):
    """An agent position: a SIP extension the phone registers as, and the skills it serves."""

    __tablename__ = "seats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    extension: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    # Digest credential for the seat phone (Kamailio registrar); kept by the hotline itself.
    sip_password: Mapped[str] = mapped_column(String(128))
    skills: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class SeatEvent(Base):
    """One seat state change, so time in each state adds up exactly."""

    __tablename__ = "seat_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seat_id: Mapped[int] = mapped_column(ForeignKey("seats.id"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    from_state: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(64), default="")


class Disposition(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    ANSWERED = "answered"
    ABANDONED_QUEUE = "abandoned_queue"
    ABANDONED_IVR = "abandoned_ivr"
    VOICEMAIL = "voicemail"
    CALLBACK = "callback"
    SELF_SERVICE = "self_service"
    SHORT = "short"
    FAILED = "failed"
    # Outbound calls (direction "out") the callee never answered.
    BUSY = "busy"
    NO_ANSWER = "no_answer"


class Call(Base):
    """The call detail record: one row per call, its id shared with recordings and events."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(8), default="in")
    caller: Mapped[str] = mapped_column(String(64), default="", index=True)
    callee: Mapped[str] = mapped_column(String(64), default="")
    worker: Mapped[str] = mapped_column(String(64), default="")
    arrived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    queued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    queue: Mapped[str] = mapped_column(String(32), default="")
    agent_answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    seat_id: Mapped[int | None] = mapped_column(ForeignKey("seats.id"), default=None)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    ivr_path: Mapped[list[Any]] = mapped_column(JSON, default=list)
    disposition: Mapped[Disposition] = mapped_column(str_enum(Disposition), default=Disposition.IN_PROGRESS)
    survey_score: Mapped[int | None] = mapped_column(Integer, default=None)
