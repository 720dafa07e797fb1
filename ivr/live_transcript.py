"""A worker's live transcripts: both legs of each call, from the speech service to the bus and SQL.

On the pjsua2 thread. The caller leg is transcribed from the moment its recording starts, the
agent leg once the seat is bridged (each leg has its own recording, so each segment has its
speaker). Every final segment is published as a `transcript` event and stored in SQL
(`recordings.transcripts`, on the SQL thread). Events go to supervisors, and to the agent of the
seat once one is bridged: the desk reads what came before from SQL. At a leg's hang-up the
service is asked to finish: it still decodes the end of the file, so the last words are kept.
With no speech service the legs are simply not transcribed.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from acd.models import Seat
from recordings import transcripts

if TYPE_CHECKING:
    from ivr.context import IvrContext

log = logging.getLogger(__name__)

SUPERVISORS = "role:supervisor"  # as acd.history: the rooms the desk's pop events go to


@dataclass
class _Call:
    origin: dt.datetime  # the call's answer: segment times of both legs count from it
    rooms: tuple[str, ...] = (SUPERVISORS,)
    streams: dict[str, str] = field(default_factory=dict)  # leg -> speech request id
    seq: dict[str, int] = field(default_factory=dict)
    ended: bool = False


class LiveTranscripts:
    def __init__(self, ctx: IvrContext) -> None:
        self.ctx = ctx
        self._calls: dict[str, _Call] = {}

    def leg_started(
        self, call_id: str, leg: str, path: Path, *, origin: dt.datetime | None = None, seat: str = ""
    ) -> None:
        """A leg's recorder has started writing `path`: transcribe it as it grows."""
        speech = self.ctx.speech
        if speech is None:
            return
        call = self._calls.setdefault(call_id, _Call(origin or self.ctx.now()))
        if call.ended or leg in call.streams:
            return
        offset = max(0.0, (self.ctx.now() - call.origin).total_seconds())
        call.streams[leg] = speech.transcribe(
            path,
            on_segment=lambda raw: self._segment(call_id, leg, offset, raw),
            on_done=lambda answer: self._done(call_id, leg, answer),
            on_partial=lambda text: self._partial(call_id, leg, text),
        )
        if seat:
            self._find_agent(call_id, seat)

    def leg_ended(self, call_id: str, leg: str) -> None:
        call = self._calls.get(call_id)
        request_id = call.streams.get(leg) if call is not None else None
        if request_id is not None and self.ctx.speech is not None:
            self.ctx.speech.finish(request_id)

    def call_ended(self, call_id: str) -> None:
        """The call is over: every leg's stream finishes (segments still decoded are kept)."""
        call = self._calls.get(call_id)
        if call is None:
            return
        call.ended = True
        for leg in list(call.streams):
            self.leg_ended(call_id, leg)
        if not call.streams:
            self._calls.pop(call_id, None)

    # Answers from the speech service (posted to this thread) ---------------------------------
    def _segment(self, call_id: str, leg: str, offset: float, raw: dict[str, Any]) -> None:
        call = self._calls.get(call_id)
        text = str(raw.get("text", "")).strip()
        if call is None or not text:
            return
        call.seq[leg] = seq = call.seq.get(leg, 0) + 1
        segment = transcripts.Segment(
            call_id,
            leg,
            seq,
            text,
            round(offset + float(raw.get("start_s", 0.0)), 2),
            round(offset + float(raw.get("end_s", 0.0)), 2),
        )
        self.ctx.events.publish(
            "transcript", {**segment.as_dict(), "worker": self.ctx.worker}, rooms=call.rooms
        )
        factory = self.ctx.factory
        self.ctx.offload.sql(
            lambda: transcripts.save(factory, segment),
            on_error=lambda exc: log.warning("call %s: a %s segment not stored: %s", call_id, leg, exc),
        )

    def _partial(self, call_id: str, leg: str, text: str) -> None:
        """The utterance in progress: shown live, replaced by its segment (same seq), never stored."""
        call = self._calls.get(call_id)
        if call is not None and text:
            data = {"call_id": call_id, "leg": leg, "seq": call.seq.get(leg, 0) + 1, "text": text}
            self.ctx.events.publish("transcript.partial", data, rooms=call.rooms)

    def _done(self, call_id: str, leg: str, answer: dict[str, Any]) -> None:
        call = self._calls.get(call_id)
        if call is None:
            return
        call.streams.pop(leg, None)
        if answer.get("error"):
            log.info("call %s: %s leg not transcribed: %s", call_id, leg, answer["error"])
        if call.ended and not call.streams:
            self._calls.pop(call_id, None)

    def _find_agent(self, call_id: str, extension: str) -> None:
        factory = self.ctx.factory

        def agent_id() -> int | None:
            with factory() as session:
                return session.scalar(select(Seat.agent_id).where(Seat.extension == extension))

        def found(agent: int | None) -> None:
            call = self._calls.get(call_id)
            if call is not None and agent is not None:
                call.rooms = (SUPERVISORS, f"user:{agent}")

        self.ctx.offload.sql(agent_id, on_done=found)
