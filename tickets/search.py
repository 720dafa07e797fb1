"""Finding tickets by what was said or written: number, phone, title, content, or the call's transcript."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from recordings.models import TranscriptSegment
from tickets.models import Ticket


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_tickets(session: Session, text: str, limit: int = 50) -> Sequence[Ticket]:
    """Newest first; every word must appear in one of the searched fields."""
    query = select(Ticket)
    for word in text.split():
        pattern = _like(word)
        query = query.where(
            or_(
                Ticket.number.like(pattern, escape="\\"),
                Ticket.caller_phone.like(pattern, escape="\\"),
                Ticket.title.like(pattern, escape="\\"),
                Ticket.content.like(pattern, escape="\\"),
                # What either side said on the call the ticket was written from (智能填单).
                exists().where(
                    TranscriptSegment.call_id == Ticket.call_id,
                    TranscriptSegment.text.like(pattern, escape="\\"),
                ),
            )
        )
    return session.scalars(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)).all()
