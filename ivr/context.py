"""What every call flow of a worker shares: its menu, prompts, records, queues, speech and clock."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hotline import bus
from hotline.db import utcnow

if TYPE_CHECKING:
    import redis
    from sqlalchemy.orm import Session, sessionmaker

    from acd.store import AcdStore
    from ivr.call_control import CallControls
    from ivr.live_transcript import LiveTranscripts
    from ivr.menu import Menu
    from ivr.offload import Offload
    from ivr.playback import PromptBook, Scheduler
    from ivr.seat_link import SeatLink
    from ivr.speech_client import SpeechClient

log = logging.getLogger(__name__)

TRANSCRIPTION_QUEUE = "default"  # where the RQ worker's sweeper re-queues lost ones too
TRANSCRIPTION_JOB = "tickets.jobs.transcribe_voicemail"
TRANSCRIPTION_RETRIES = (10, 30, 60, 300, 900)


class EventSink(Protocol):
    def publish(self, type_: str, data: dict[str, Any], rooms: tuple[str, ...] = ()) -> None: ...


@dataclass
class IvrContext:
    worker: str  # the name in bus events and heartbeats: sip-worker-N
    record_name: str  # the name in CDRs: sip-worker-N@host, unique across softswitch hosts
    menu: Menu
    book: PromptBook
    events: EventSink
    offload: Offload
    factory: sessionmaker[Session]
    recordings_root: Path
    redis_url: str
    edge_address: str  # host:port of the public SIP address (Kamailio), for transfers
    speech: SpeechClient | None = None
    transcripts: LiveTranscripts | None = None  # both legs' live transcripts, when speech is on
    scheduler: Scheduler | None = None  # the SIP edge, set once it exists
    seat_link: SeatLink | None = None  # offers for this worker's waiting callers, seat legs out
    controls: CallControls | None = None  # the agents' and supervisors' commands for bridged calls
    stopping: bool = False
    now: Callable[[], dt.datetime] = utcnow
    _acd: AcdStore | None = field(default=None, repr=False)
    _rq: redis.Redis | None = field(default=None, repr=False)

    # Redis thread only ----------------------------------------------------------------------
    def acd(self) -> AcdStore:
        if self._acd is None:
            from acd.history import ChangeRecorder
            from acd.store import AcdStore

            client = bus.connect(self.redis_url, timeout_s=2.0)
            # Seat changes made here (answer, RONA, wrap-up) join the seat history like any other.
            self._acd = AcdStore(client, on_change=ChangeRecorder(self.factory, bus.EventBus(client)))
        return self._acd

    def queue_transcription(self, ticket_id: int) -> None:
        """The voicemail's RQ job; if Redis is down the RQ worker's sweeper queues it from SQL."""
        from rq import Queue, Retry

        if self._rq is None:
            # RQ stores pickled payloads: its connection must not decode responses.
            self._rq = bus.connect(self.redis_url, decode_responses=False, timeout_s=2.0)
        Queue(TRANSCRIPTION_QUEUE, connection=self._rq).enqueue(
            TRANSCRIPTION_JOB,
            ticket_id,
            job_id=f"transcribe-voicemail-{ticket_id}",
            retry=Retry(max=len(TRANSCRIPTION_RETRIES), interval=list(TRANSCRIPTION_RETRIES)),
        )
