"""Callback tasks (漏接回拨 and virtual hold): every caller the hotline missed is called back.

A task is booked in the transaction that closes the missed call's CDR (abandoned in the queue or
the IVR, lost with a failed worker) or when a waiting caller asks to be called back (virtual hold:
the task keeps the time the caller joined the queue, so it is served in that place). One open
task per phone number: a citizen who tried three times is called back once, and the task counts
the misses. Anonymous callers cannot be called back and get no task.

States: `open -> dialling -> done`, `dialling -> open` (no answer: tried again later, up to
`MAX_ATTEMPTS`), `dialling -> failed`, `open -> cancelled`, and `open -> done` when the citizen
calls again and reaches an agent first (`answered`); anything else raises.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from hotline.accounts import str_enum
from hotline.db import Base, UTCDateTime, utcnow

MAX_ATTEMPTS = 3
RETRY_AFTER = dt.timedelta(minutes=10)
# A citizen who just hung up is not rung back the same second; one who asked for it is.
FIRST_TRY_AFTER = dt.timedelta(minutes=2)


class CallbackReason(enum.StrEnum):
    ABANDONED_QUEUE = "abandoned_queue"  # hung up while waiting for a person
    ABANDONED_IVR = "abandoned_ivr"  # hung up in the menu
    LOST = "lost"  # the worker holding the call died
    VIRTUAL_HOLD = "virtual_hold"  # asked to be called back, keeping the place in the queue
    FALLBACK = "fallback"  # nobody could take the call, and the fallback is a callback


ASKED = {CallbackReason.VIRTUAL_HOLD, CallbackReason.FALLBACK}  # the caller chose or was told


class CallbackStatus(enum.StrEnum):
    OPEN = "open"
    DIALLING = "dialling"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TRANSITIONS: dict[CallbackStatus, frozenset[CallbackStatus]] = {
    CallbackStatus.OPEN: frozenset({CallbackStatus.DIALLING, CallbackStatus.CANCELLED, CallbackStatus.DONE}),
    CallbackStatus.DIALLING: frozenset({CallbackStatus.OPEN, CallbackStatus.DONE, CallbackStatus.FAILED}),
    CallbackStatus.DONE: frozenset(),
    CallbackStatus.FAILED: frozenset(),
    CallbackStatus.CANCELLED: frozenset(),
}


class CallbackError(Exception):
    """A task was asked to move somewhere its state does not allow."""


class CallbackTask(Base):
    __tablename__ = "callback_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    caller: Mapped[str] = mapped_column(String(64), index=True)
    call_id: Mapped[str] = mapped_column(String(64))  # the latest missed call
    queue: Mapped[str] = mapped_column(String(32), default="")
    reason: Mapped[CallbackReason] = mapped_column(str_enum(CallbackReason))
    status: Mapped[CallbackStatus] = mapped_column(
        str_enum(CallbackStatus), default=CallbackStatus.OPEN, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The place in line: when the caller first waited (virtual hold) or called (a missed call).
    entered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    missed: Mapped[int] = mapped_column(Integer, default=1)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    seat_id: Mapped[int | None] = mapped_column(ForeignKey("seats.id"), default=None)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    outcome: Mapped[str] = mapped_column(String(32), default="")


def book(
    session: Session,
    caller: str,
    call_id: str,
    reason: CallbackReason,
    *,
    queue: str = "",
    entered_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> CallbackTask | None:
    """The caller's open task (one more miss on it), or a new one; None for anonymous callers."""
    if not caller.strip() or caller.lower() == "anonymous":
        return None
    now = now or utcnow()
    task = session.scalar(
        select(CallbackTask).where(
            CallbackTask.caller == caller,
            CallbackTask.status.in_((CallbackStatus.OPEN, CallbackStatus.DIALLING)),
        )
    )
    if task is not None:
        task.missed += 1
        task.call_id = call_id
        if reason is CallbackReason.VIRTUAL_HOLD:
            task.reason = reason  # an explicit request outranks a missed call
        return task
    task = CallbackTask(
        caller=caller,
        call_id=call_id,
        queue=queue,
        reason=reason,
        status=CallbackStatus.OPEN,
        created_at=now,
        entered_at=entered_at or now,
        due_at=now if reason in ASKED else now + FIRST_TRY_AFTER,
        missed=1,
        attempts=0,
    )
    session.add(task)
    return task


def answered(session: Session, caller: str, now: dt.datetime | None = None) -> CallbackTask | None:
    """The citizen called again and an agent took the call: the open task is done (`called_in`),
    so nobody rings back about a call already answered. A task being dialled is left to its call."""
    task = session.scalar(
        select(CallbackTask).where(CallbackTask.caller == caller, CallbackTask.status == CallbackStatus.OPEN)
    )
    if task is not None:
        move(task, CallbackStatus.DONE, outcome="called_in", now=now)
    return task


def due(session: Session, now: dt.datetime | None = None, limit: int = 20) -> list[CallbackTask]:
    """Open tasks whose time has come, in the order of their place in line."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(CallbackTask)
            .where(CallbackTask.status == CallbackStatus.OPEN, CallbackTask.due_at <= now)
            .order_by(CallbackTask.entered_at, CallbackTask.id)
            .limit(limit)
        )
    )


def move(
    task: CallbackTask, target: CallbackStatus, *, outcome: str = "", now: dt.datetime | None = None
) -> None:
    """Apply one transition (see the module docstring); `CallbackError` if it is not allowed."""
    if target not in TRANSITIONS[task.status]:
        raise CallbackError(f"callback {task.id}: {task.status.value} -> {target.value} not allowed")
    now = now or utcnow()
    if target is CallbackStatus.DIALLING:
        task.attempts += 1
    elif target is CallbackStatus.OPEN:
        # Not reached this time: again later, unless it has been tried enough.
        if task.attempts >= MAX_ATTEMPTS:
            target = CallbackStatus.FAILED
        task.due_at = now + RETRY_AFTER
    if target in (CallbackStatus.DONE, CallbackStatus.FAILED, CallbackStatus.CANCELLED):
        task.done_at = now
    task.status = target
    task.outcome = outcome or task.outcome
