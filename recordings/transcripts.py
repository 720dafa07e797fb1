"""A call's transcript in SQL: the segments of both legs as the speech service decoded them.

The softswitch stores each final segment as it arrives (one short transaction each), so the
transcript so far survives a page reload, a lost worker and the end of the call; the desk shows
it, the ticket form is pre-filled from the caller's part, and ticket search finds it by call id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from recordings.models import TranscriptSegment

CALLER = "caller"
AGENT = "agent"
MAX_TEXT = 2000  # one utterance; a longer one is a decoder gone astray


@dataclass(frozen=True)
class Segment:
    call_id: str
    leg: str
    seq: int
    text: str
    start_s: float
    end_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "leg": self.leg,
            "seq": self.seq,
            "text": self.text,
            "start_s": self.start_s,
            "end_s": self.end_s,
        }


def save(factory: sessionmaker[Session], segment: Segment) -> bool:
    """Store one segment; False when it was stored already (a write retried)."""
    with transaction(factory) as session:
        found = session.scalar(
            select(TranscriptSegment.id).where(
                TranscriptSegment.call_id == segment.call_id,
                TranscriptSegment.leg == segment.leg,
                TranscriptSegment.seq == segment.seq,
            )
        )
        if found is not None:
            return False
        session.add(
            TranscriptSegment(
                call_id=segment.call_id,
                leg=segment.leg,
                seq=segment.seq,
                start_s=segment.start_s,
                end_s=segment.end_s,
                text=segment.text[:MAX_TEXT],
            )
        )
    return True


def for_call(session: Session, call_id: str) -> list[Segment]:
    """Both legs in the order they were said."""
    rows: Sequence[TranscriptSegment] = session.scalars(
        select(TranscriptSegment)
        .where(TranscriptSegment.call_id == call_id)
        .order_by(TranscriptSegment.start_s, TranscriptSegment.leg, TranscriptSegment.seq)
    ).all()
    return [Segment(r.call_id, r.leg, r.seq, r.text, r.start_s, r.end_s) for r in rows]


def caller_text(segments: Sequence[Segment]) -> str:
    """What the citizen said, as one text: the draft of the ticket's content (智能填单)."""
    return " ".join(s.text for s in segments if s.leg == CALLER)
