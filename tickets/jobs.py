"""RQ jobs of the ticket engine: voicemail transcription, notification delivery, the SLA sweep.

Voicemail (留言) becomes a ticket: registered at once in SQL, transcribed later by a job.

The softswitch calls `register_voicemail` in the same transaction that seals the recording, so
a voicemail is a ticket before anything touches Redis. `transcribe_voicemail` (enqueued by
dotted name, `tickets.jobs.transcribe_voicemail`) fills in the text; it is safe to run twice,
and `pending_voicemails` finds tickets whose job was lost (Redis gone) so it can be queued again.
"""

from __future__ import annotations

import functools
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import make_engine, make_session_factory, transaction
from hotline.settings import Settings, load_settings
from recordings.models import Recording
from tickets import delivery, supervision
from tickets.lifecycle import Action
from tickets.models import Channel, Ticket
from tickets.service import apply, create_ticket

log = logging.getLogger(__name__)

PENDING = "（留言录音，正在转写）"
UNRECOGNISED = "（留言未能自动识别，请收听录音）"
NO_SPEECH_ENGINE = "（未配置语音识别，请收听录音）"
VOICEMAIL_LEG = "voicemail"


def register_voicemail(session: Session, call_id: str, caller_phone: str) -> Ticket:
    """The voicemail's ticket, created once per call (a second call returns the same one)."""
    ticket = session.scalar(
        select(Ticket).where(Ticket.call_id == call_id, Ticket.channel == Channel.VOICEMAIL)
    )
    if ticket is None:
        ticket = create_ticket(
            session,
            channel=Channel.VOICEMAIL,
            content=PENDING,
            title="市民留言",
            caller_phone=caller_phone,
            call_id=call_id,
        )
    return ticket


@functools.cache
def _context() -> tuple[Settings, sessionmaker[Session]]:
    settings = load_settings()
    return settings, make_session_factory(make_engine(settings.effective_database_url))


def transcribe_voicemail(ticket_id: int) -> str:
    """Fill in the voicemail ticket's text from its recording; returns the ticket number."""
    settings, factory = _context()
    with factory() as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            raise LookupError(f"ticket {ticket_id} does not exist")
        number = ticket.number
        if ticket.content != PENDING:
            return number  # done by an earlier run
        recording = session.scalar(
            select(Recording).where(Recording.call_id == ticket.call_id, Recording.leg == VOICEMAIL_LEG)
        )
        if recording is None or not recording.complete:
            raise LookupError(f"ticket {number}: its voicemail recording is not sealed yet")
        path = settings.recordings_dir / recording.path
    if settings.vosk_model is None:
        text, note = NO_SPEECH_ENGINE, "留言未转写（未配置语音识别）"
    else:
        # Imported here: vosk's native library should load only in the process that decodes,
        # not in every SIP worker that registers a voicemail or web process that reads PERIODIC.
        from recordings import transcribe

        # An error here makes RQ retry; the ticket exists already, so nothing is lost meanwhile.
        model = transcribe.load_model(settings.vosk_model)
        text, note = transcribe.transcribe_wav(model, path) or UNRECOGNISED, "留言已转写"
    with transaction(factory) as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is not None and ticket.content == PENDING:
            ticket.content = text
            apply(session, ticket, Action.NOTE, note=note)
    log.info("voicemail ticket %s transcribed", number)
    return number


def pending_voicemails(factory: sessionmaker[Session]) -> list[int]:
    """Voicemail tickets still waiting for their transcript (to queue their job again)."""
    with factory() as session:
        query = select(Ticket.id).where(Ticket.channel == Channel.VOICEMAIL, Ticket.content == PENDING)
        return list(session.scalars(query))


def deliver_notifications() -> dict[str, object]:
    """Send every due notification once (run every few seconds; safe to run twice at once).

    Without `notify_*` settings it sends nothing and says so in `status`; the rows wait.
    """
    settings, factory = _context()
    report = delivery.deliver_due(factory, delivery.DeliveryConfig.from_settings(settings))
    if report.not_configured:
        log.warning("notifications waiting: %s", report.status)
    return {
        "delivered": report.delivered,
        "retrying": report.retrying,
        "failed": report.failed,
        "status": report.status,
    }


def sla_sweep() -> dict[str, list[str]]:
    """催办 before and 督办 after the sign and reply deadlines, once each (run every few minutes)."""
    _settings, factory = _context()
    result = supervision.sweep(factory)
    return {"urged": result.urged, "supervised": result.supervised}


# What the worker runs periodically: dotted job name and interval in seconds.
PERIODIC = (
    ("tickets.jobs.deliver_notifications", 10.0),
    ("tickets.jobs.sla_sweep", 120.0),
    # 回访 calls through the softswitch for the revisits due today (daytime only).
    ("tickets.revisit_calls.request_calls", 600.0),
)
