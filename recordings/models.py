"""Recording files as SQL records (call, leg, file, checksum) and the transcript segments of call legs."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hotline.db import Base, UTCDateTime, utcnow


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    # caller, agent, voicemail, ...: one file per leg, so transcripts have speakers.
    leg: Mapped[str] = mapped_column(String(16))
    # Relative to the recordings directory, e.g. 2026/11/27/<call_id>-caller.wav.
    path: Mapped[str] = mapped_column(String(255), unique=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    # False while the call is recording, and after a crash until the file has been repaired.
    complete: Mapped[bool] = mapped_column(Boolean, default=False)


class TranscriptSegment(Base):
    """One utterance of a call leg, transcribed while the call went on (智能填单, search)."""

    __tablename__ = "transcript_segments"
    __table_args__ = (UniqueConstraint("call_id", "leg", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    leg: Mapped[str] = mapped_column(String(16))  # caller or agent: the speaker
    # The n-th utterance of its leg: a segment stored twice (a retried write) is stored once.
    seq: Mapped[int] = mapped_column(Integer)
    # Seconds since the call was answered, so both legs share one timeline.
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
