"""Every SQL model of the hotline, imported in one place for Alembic and `create_all`."""

from __future__ import annotations

from acd.callbacks import CallbackTask
from acd.models import Call, Seat, SeatEvent
from hotline.accounts import AuditEntry, User
from hotline.db import Base
from recordings.models import Recording, TranscriptSegment
from tickets.knowledge import Article
from tickets.models import Department, Ticket, TicketCounter, TicketEvent
from tickets.work_calendar import CalendarDay

__all__ = [
    "Article",
    "AuditEntry",
    "Base",
    "CalendarDay",
    "Call",
    "CallbackTask",
    "Department",
    "Recording",
    "Seat",
    "SeatEvent",
    "Ticket",
    "TicketCounter",
    "TicketEvent",
    "TranscriptSegment",
    "User",
]
