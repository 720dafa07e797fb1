"""Recording files as SQL records: which call and leg, where the file is, and its checksum."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Float, Integer, String
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
