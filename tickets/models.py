"""Work orders (工单), departments, categories, the dispatch catalog and API records, as SQL rows.

The lifecycle and deadline rules live in their own modules (no I/O); these are the stored shapes.
Every status change is a `TicketEvent` row: the history, audit trail and statistics read from it.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from hotline.accounts import str_enum
from hotline.db import Base, UTCDateTime, utcnow

# The outcome side's tables (outbox, ratings, revisits, Open311, portal) live in their own module;
# importing it here registers them wherever these models are (Alembic, tests emptying tables).
from tickets import models_outcomes  # noqa: F401


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
    # Whom the centre calls there about a ticket (name and phone); kept on the admin page.
    contact: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # Where notifications go by e-mail besides the department system's webhook ("" for none).
    notify_email: Mapped[str] = mapped_column(String(200), default="", server_default="")
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


class Urgency(enum.StrEnum):
    NORMAL = "normal"  # 一般
    URGENT = "urgent"  # 紧急
    EMERGENCY = "emergency"  # 特急 (safety of people or property at stake)


class RequestKind(enum.StrEnum):
    """诉求类型: what the citizen wants, which sets the default time limit."""

    CONSULT = "consult"  # 咨询
    HELP = "help"  # 求助
    COMPLAINT = "complaint"  # 投诉
    REPORT = "report"  # 举报
    SUGGESTION = "suggestion"  # 建议
    PRAISE = "praise"  # 表扬


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
    urgency: Mapped[Urgency] = mapped_column(str_enum(Urgency), default=Urgency.NORMAL)
    request_kind: Mapped[RequestKind] = mapped_column(
        str_enum(RequestKind), default=RequestKind.HELP, server_default=RequestKind.HELP.value
    )
    # 保密: the reporter's name and phone are never shown to the department.
    confidential: Mapped[bool] = mapped_column(Boolean, default=False)
    # The department must call the citizen back itself, so it sees the full phone number.
    callback_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The lead (主办) department; assisting ones (协办) have a `TicketAssignment` each, as the lead has.
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), default=None, index=True)
    # The call that created it (shared id with the CDR, recordings and events).
    call_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    # 签收时限 and 办结时限 (the reply deadline; an approved extension moves it).
    sign_deadline_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    deadline_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    # 并单: a merged ticket follows its lead ticket (status MERGED).
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None, index=True)
    # Optimistic locking: every UPDATE checks and bumps it, so a change made on a stale copy
    # (a form opened before someone else acted) fails instead of overwriting.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}


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


class Category(Base):
    """A service category with a GB/T 39666-2020 shaped code: 2+2+2 digits, zeros below its level."""

    __tablename__ = "categories"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("categories.code"), default=None)
    level: Mapped[int] = mapped_column(Integer)
    # A time limit for this category that overrides the request kind's, e.g. "24h" or "5wd".
    reply_limit: Mapped[str] = mapped_column(String(16), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class DispatchRule(Base):
    """One line of the dispatch catalog (派单目录): category [+ district] [+ keywords] -> departments."""

    __tablename__ = "dispatch_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A leaf code, or a higher-level one (e.g. 010100) covering every category below it.
    category_code: Mapped[str] = mapped_column(ForeignKey("categories.code"), index=True)
    district: Mapped[str] = mapped_column(String(64), default="")  # empty: any district
    keywords: Mapped[str] = mapped_column(String(200), default="")  # space separated; any one must occur
    lead_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    assist_department_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class AssignmentRole(enum.StrEnum):
    LEAD = "lead"  # 主办
    ASSIST = "assist"  # 协办


class AssignmentState(enum.StrEnum):
    DISPATCHED = "dispatched"
    SIGNED = "signed"
    REPLIED = "replied"
    RETURNED = "returned"


class TicketAssignment(Base):
    """A department's share of a ticket: the lead's or an assisting one's, each signed and replied."""

    __tablename__ = "ticket_assignments"
    __table_args__ = (UniqueConstraint("ticket_id", "department_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    role: Mapped[AssignmentRole] = mapped_column(str_enum(AssignmentRole))
    state: Mapped[AssignmentState] = mapped_column(str_enum(AssignmentState))
    # False once the centre re-dispatched the ticket elsewhere: the department no longer sees it.
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    signed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    replied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    reply: Mapped[str] = mapped_column(Text, default="")


class ExtensionState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


class ExtensionRequest(Base):
    """延期申请: asked by the lead department before the deadline, decided by the centre."""

    __tablename__ = "extension_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    reason: Mapped[str] = mapped_column(Text)
    proposed_date: Mapped[dt.date] = mapped_column(Date)
    state: Mapped[ExtensionState] = mapped_column(str_enum(ExtensionState), default=ExtensionState.PENDING)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    old_deadline_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    new_deadline_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class Attachment(Base):
    """A file attached to a reply; stored once by content (sha256) under var/attachments."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), default=None)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_events.id"), default=None)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(String(200))  # relative to the attachments folder
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    """A department system's API token; only its sha256 is stored, the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists so a token can be recognised
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class IdempotencyRecord(Base):
    """The first answer to a department API request with a given Idempotency-Key, replayed after."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("department_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))  # method, path and body: a reused key is refused
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
