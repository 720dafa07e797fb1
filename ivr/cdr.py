"""A call's durable record in SQL: its CDR row, recordings, a voicemail's ticket, crash recovery.

Runs on a worker's SQL thread (`ivr.offload`), never on the pjsua2 thread. Each function is one
transaction, so a worker killed at any point leaves rows that are either written or not, never
half-written; what a killed worker left open, `recover` closes when it starts again.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd import callbacks
from acd.callbacks import CallbackReason
from acd.models import Call, Disposition, Seat
from hotline.db import transaction, utcnow
from recordings import storage
from recordings.models import Recording
from tickets.models import Ticket, TicketStatus

log = logging.getLogger(__name__)

CALLER_LEG = "caller"
AGENT_LEG = "agent"  # what the seat's phone sends: the agent's side of a bridged call


def next_leg(base: str, refs: list[RecordingRef]) -> str:
    """The leg name for another recording of `base` in one call: the agent a call was transferred
    to is "agent-2" (one file and one transcript per speaker; names are unique per call)."""
    taken = {ref.leg for ref in refs}
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


VOICEMAIL_LEG = "voicemail"  # as `tickets.jobs.VOICEMAIL_LEG`, which finds the message by it
# Shorter than this is a caller who pressed # or hung up at once: there is nothing to listen to.
MIN_VOICEMAIL_S = 1.0
# A recorder is destroyed (and its file finished) a quarter second after it was stopped.
CLOSE_WAIT_S = 3.0

Factory = sessionmaker[Session]
# Calls that end in these dispositions are called back (漏接回拨).
MISSED = {
    Disposition.ABANDONED_QUEUE: CallbackReason.ABANDONED_QUEUE,
    Disposition.ABANDONED_IVR: CallbackReason.ABANDONED_IVR,
}


@dataclass(frozen=True)
class CallOpened:
    call_id: str
    caller: str
    callee: str
    worker: str
    arrived_at: dt.datetime
    answered_at: dt.datetime


@dataclass(frozen=True)
class RecordingRef:
    id: int
    leg: str
    path: Path  # absolute: where the recorder writes


@dataclass(frozen=True)
class VoicemailSaved:
    ticket_id: int
    number: str
    seconds: float
    sha256: str


@dataclass(frozen=True)
class CallClosed:
    opened: CallOpened
    ended_at: dt.datetime
    disposition: Disposition
    ivr_path: list[dict[str, Any]]
    recorded: tuple[RecordingRef, ...] = ()  # closed recorders: seal them
    unused: tuple[RecordingRef, ...] = ()  # registered, never started: drop them
    voicemail: RecordingRef | None = None  # the caller hung up while leaving a message


@dataclass(frozen=True)
class StatusAnswer:
    number: str
    status: TicketStatus


@dataclass
class Recovered:
    calls: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    voicemail_tickets: list[int] = field(default_factory=list)
    recordings: int = 0


def _row(session: Session, call_id: str) -> Call | None:
    return session.scalar(select(Call).where(Call.call_id == call_id))


def _new_row(opened: CallOpened) -> Call:
    return Call(
        call_id=opened.call_id,
        direction="in",
        caller=opened.caller,
        callee=opened.callee,
        worker=opened.worker,
        arrived_at=opened.arrived_at,
        answered_at=opened.answered_at,
        disposition=Disposition.IN_PROGRESS,
    )


def open_call(factory: Factory, opened: CallOpened) -> None:
    with transaction(factory) as session:
        if _row(session, opened.call_id) is None:
            session.add(_new_row(opened))


def mark_queued(
    factory: Factory, opened: CallOpened, queue: str, at: dt.datetime, ivr_path: list[dict[str, Any]]
) -> None:
    """The caller waits for a person: the CDR says where and since when (still in progress)."""
    with transaction(factory) as session:
        row = _row(session, opened.call_id)
        if row is None:
            row = _new_row(opened)
            session.add(row)
        row.queue, row.queued_at, row.ivr_path = queue, at, list(ivr_path)


def mark_answered(factory: Factory, opened: CallOpened, extension: str, at: dt.datetime) -> None:
    """An agent answered: when, and at which seat (still in progress until the call ends)."""
    with transaction(factory) as session:
        row = _row(session, opened.call_id)
        if row is None:
            row = _new_row(opened)
            session.add(row)
        row.agent_answered_at = at
        row.seat_id = session.scalar(select(Seat.id).where(Seat.extension == extension))
        if row.direction == "in" and row.caller:
            callbacks.answered(session, row.caller, now=at)  # reached us: no callback needed now


def register_recording(factory: Factory, root: Path, call_id: str, leg: str) -> RecordingRef:
    """The row first (incomplete), then the recorder may write the file."""
    with transaction(factory) as session:
        recording = storage.register(session, root, call_id, leg)
        return RecordingRef(recording.id, leg, (root / recording.path).resolve())


def seal_recordings(factory: Factory, root: Path, refs: tuple[RecordingRef, ...]) -> None:
    """Seal recordings whose recorders were stopped (a callback's legs: no inbound CDR closes them)."""
    for ref in refs:
        wait_closed(ref.path)  # before the transaction: no database lock held while waiting
    with transaction(factory) as session:
        for ref in refs:
            _seal(session, root, ref)


def store_survey(factory: Factory, call_id: str, score: int) -> None:
    """The caller's key in the after-call survey (1 满意, 2 基本满意, 3 不满意) on its CDR."""
    with transaction(factory) as session:
        row = _row(session, call_id)
        if row is not None:
            row.survey_score = score


def drop_recordings(factory: Factory, refs: tuple[RecordingRef, ...]) -> None:
    with transaction(factory) as session:
        _drop(session, refs)


def _drop(session: Session, refs: tuple[RecordingRef, ...]) -> None:
    for ref in refs:
        recording = session.get(Recording, ref.id)
        if recording is not None:
            session.delete(recording)
        ref.path.unlink(missing_ok=True)


def wait_closed(path: Path, timeout_s: float = CLOSE_WAIT_S) -> bool:
    """Wait until the recorder has closed `path`: its WAV header then states the file's true sizes.

    The SIP edge destroys a stopped recorder only after the conference bridge has disconnected it
    (`ivr.sip.edge.RELEASE_DELAY_S`); until then the file lacks its last samples and sizes.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with path.open("rb") as f:
                header = f.read(storage.WAV_HEADER_MIN)
                length = f.seek(0, 2)
            riff, data = struct.unpack_from("<I", header, 4)[0], struct.unpack_from("<I", header, 40)[0]
            if header[:4] == b"RIFF" and riff == length - 8 and data == length - storage.WAV_HEADER_MIN:
                return True
        except (OSError, struct.error):
            pass
        if time.monotonic() >= deadline:
            log.warning("recording %s was not closed within %.0fs; sealing it as it is", path, timeout_s)
            return False  # the header is repaired from the file's length
        time.sleep(0.01)


def _seal(session: Session, root: Path, ref: RecordingRef) -> Recording | None:
    recording = session.get(Recording, ref.id)
    if recording is None:
        return None
    try:
        return storage.seal(recording, root)
    except storage.RecordingError as exc:
        # The row stays incomplete: visibly so, for an operator to look at.
        log.error("recording %s of call %s not sealed: %s", recording.path, recording.call_id, exc)
        return None


def _voicemail(
    session: Session, root: Path, ref: RecordingRef, call_id: str, caller: str
) -> VoicemailSaved | None:
    """Seal the message and make it a ticket (same transaction); drop it when there is nothing in it."""
    recording = session.get(Recording, ref.id)
    if recording is None:
        return None
    try:
        seconds = storage.wav_duration(root / recording.path)
    except (OSError, storage.RecordingError):
        seconds = 0.0
    if seconds < MIN_VOICEMAIL_S:
        _drop(session, (ref,))
        return None
    sealed = _seal(session, root, ref)
    if sealed is None:
        return None
    # Imported here: tickets.jobs loads vosk (and the ticket services), about 20 MB in each of
    # 16 workers that would otherwise never use them; a worker pays for it at its first message.
    from tickets.jobs import register_voicemail

    ticket = register_voicemail(session, call_id, caller)
    session.flush()
    return VoicemailSaved(ticket.id, ticket.number, sealed.duration_s, sealed.sha256)


def save_voicemail(
    factory: Factory, root: Path, ref: RecordingRef, call_id: str, caller: str
) -> VoicemailSaved | None:
    wait_closed(ref.path)  # before the transaction: no database lock held while waiting
    with transaction(factory) as session:
        return _voicemail(session, root, ref, call_id, caller)


def close_call(factory: Factory, root: Path, closed: CallClosed) -> VoicemailSaved | None:
    """Seal the call's recordings, save a message left before hanging up, and close the CDR."""
    opened = closed.opened
    for ref in (*closed.recorded, *([closed.voicemail] if closed.voicemail else [])):
        wait_closed(ref.path)  # before the transaction: no database lock held while waiting
    with transaction(factory) as session:
        for ref in closed.recorded:
            _seal(session, root, ref)
        _drop(session, closed.unused)
        saved = None
        if closed.voicemail is not None:
            saved = _voicemail(session, root, closed.voicemail, opened.call_id, opened.caller)
        row = _row(session, opened.call_id)
        if row is None:
            row = _new_row(opened)
            session.add(row)
        row.ended_at = closed.ended_at
        row.ivr_path = list(closed.ivr_path)
        row.disposition = Disposition.VOICEMAIL if saved is not None else closed.disposition
        missed = MISSED.get(row.disposition)
        if missed is not None:
            # 漏接回拨: booked with the record of the miss, so no missed call goes without a task.
            callbacks.book(
                session, row.caller, row.call_id, missed, queue=row.queue, entered_at=row.arrived_at
            )
    return saved


def phone_digits(phone: str) -> str:
    """A phone number reduced to what identifies it: digits, without +86/0086 in front."""
    digits = re.sub(r"\D", "", phone)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) >= 11:
            return digits[len(prefix) :]
    return digits


def lookup_status(factory: Factory, digits: str, caller: str) -> StatusAnswer | None:
    """The status of ticket `digits` (its number without the dash), only for the number that reported it.

    A wrong number and somebody else's ticket give the same answer (None), so the IVR cannot be
    used to learn which ticket numbers exist.
    """
    caller_digits = phone_digits(caller)
    if not caller_digits or not digits.isdigit() or len(digits) < 9:
        return None
    number = f"{digits[:8]}-{digits[8:]}"
    with factory() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.number == number))
        if ticket is None or phone_digits(ticket.caller_phone) != caller_digits:
            return None
        return StatusAnswer(ticket.number, ticket.status)


def recover(factory: Factory, root: Path, worker: str, before: dt.datetime) -> Recovered:
    """Close what this worker left open when it died: its CDRs, its messages, its recordings."""
    found = Recovered()
    now = utcnow()
    with transaction(factory) as session:
        rows = session.scalars(
            select(Call).where(
                Call.worker == worker,
                Call.disposition == Disposition.IN_PROGRESS,
                Call.arrived_at < before,
            )
        ).all()
        for row in rows:
            found.calls.append(row.call_id)
            if row.queued_at is not None:
                found.queued.append(row.call_id)
            row.ended_at = now
            # An agent had answered: the caller was served, even if the end went unrecorded.
            row.disposition = Disposition.FAILED if row.agent_answered_at is None else Disposition.ANSWERED
            row.ivr_path = [*(row.ivr_path or []), {"event": "worker_lost", "recovered_at": now.isoformat()}]
            # A message the caller was leaving is kept: sealed and made a ticket like any other.
            messages = session.scalars(
                select(Recording).where(
                    Recording.call_id == row.call_id,
                    Recording.leg == VOICEMAIL_LEG,
                    Recording.complete.is_(False),
                )
            ).all()
            for message in messages:
                ref = RecordingRef(message.id, VOICEMAIL_LEG, root / message.path)
                saved = _voicemail(session, root, ref, row.call_id, row.caller)
                if saved is not None:
                    found.voicemail_tickets.append(saved.ticket_id)
                    row.disposition = Disposition.VOICEMAIL
            if row.disposition is Disposition.FAILED:
                # Lost before anyone answered and without a message: a missed call to return.
                callbacks.book(session, row.caller, row.call_id, CallbackReason.LOST, queue=row.queue)
    dead = set(found.calls)
    found.recordings = len(
        storage.recover_incomplete(factory, root, is_live=lambda call_id: call_id not in dead)
    )
    return found
