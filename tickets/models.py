"""Work orders (工单) and the departments they are dispatched to, as SQL records.

The lifecycle rules live in their own module (no I/O); these are the stored shapes. Every
status change is a `TicketEvent` row: the history, audit trail and statistics read from it.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hotline.accounts import str_enum
from hotline.db import Base, UTCDateTime, utcnow


class DepartmentKind(enum.StrEnum):
    DISTRICT = "district"  # 区县 (district, special zone, county-level city)
    BUREAU = "bureau"  # 市直委办局
    ENTERPRISE = "enterprise"  # 公共服务企业 (water, power, gas, telecom)


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[DepartmentKind] = mapped_column(str_enum(DepartmentKind))
    hotline_number: Mapped[str] = mapped_column(String(32), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class TicketStatus(enum.StrEnum):
    ACCEPTED = "accepted"  # 受理
    RESOLVED_DIRECTLY = "resolved_directly"  # 直接办结
    DISPATCHED = "dispatched"  # 派单
    SIGNED = "signed"  # 签收
    IN_PROGRESS = "in_progress"  # 办理
    RETURNED = "returned"  # 退单
    REPLIED = "replied"  # 办结
    REVIEWED = "reviewed"  # 审核
    REVISITED = "revisited"  # 回访
    CLOSED = "closed"  # 归档
    MERGED = "merged"  # 并单 (follows its lead ticket)


class Channel(enum.StrEnum):
    PHONE = "phone"
    VOICEMAIL = "voicemail"
    PORTAL = "portal"
    OPEN311 = "open311"
    DEPARTMENT_API = "department_api"


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Readable and unique: date + daily sequence, e.g. 20261127-0042.
    number: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[TicketStatus] = mapped_column(
        str_enum(TicketStatus), default=TicketStatus.ACCEPTED, index=True
    )
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    caller_phone: Mapped[str] = mapped_column(String(32), default="", index=True)
    caller_name: Mapped[str] = mapped_column(String(64), default="")
    title: Mapped[str] = mapped_column(String(200), default="")
    content: Mapped[str] = mapped_column(Text, default="")
    category_code: Mapped[str] = mapped_column(String(6), default="")
    district: Mapped[str] = mapped_column(String(64), default="")
    address: Mapped[str] = mapped_column(String(200), default="")
    urgency: Mapped[str] = mapped_column(String(16), default="normal")
    confidential: Mapped[bool] = mapped_column(Boolean, default=False)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), default=None, index=True)
    # The call that created it (shared id with the CDR, recordings and events).
    call_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    deadline_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class TicketEvent(Base):
    """An append-only record of one transition of one ticket."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[TicketStatus | None] = mapped_column(str_enum(TicketStatus), default=None)
    to_status: Mapped[TicketStatus] = mapped_column(str_enum(TicketStatus))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), default=None)
    note: Mapped[str] = mapped_column(Text, default="")


class TicketCounter(Base):
    """The last ticket sequence number handed out on one day (Asia/Shanghai date)."""

    __tablename__ = "ticket_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)
