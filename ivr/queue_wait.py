"""A caller waiting for a person: the queue, the comfort loop, the seat's phone ringing, the bridge.

The `queue` leave action of a call flow, on the pjsua2 thread. The caller is queued in the ACD
(Redis thread), joins this worker's `SeatLink`, and hears "please hold", the position, the
expected wait and the options (1: leave a message, 2: keep the place and be called back) in a
loop until an offer comes. When nobody can take the call (no seat logged in with the queue's
skill, or too many waiting) the caller hears so and gets the configured fallback.

An offer rings the seat (`SeatCall`) while the caller keeps hearing the loop; on answer the two
are bridged and the call is the agent's. A seat that does not
answer (RONA), refuses, or logs out while ringing puts the caller back at the head of the queue,
and the loop goes on. When the seat hangs up first the caller hears the goodbye; when the caller
hangs up, the seat leg is hung up and the seat goes to wrap-up (or back to ready if it was ringing).
While bridged, the agent's call controls (hold, survey, transfers, supervision) act through the
call's `ivr.call_control.Talk`; a transfer to another queue brings the caller back here.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

from acd import callbacks
from acd.callbacks import CallbackReason
from acd.models import Disposition
from acd.store import Offer, QueueUnavailable
from hotline.db import transaction
from ivr import cdr
from ivr.menu import DEFAULT_QUEUE, Action, ActionKind
from ivr.scenes import Goodbye
from ivr.seat_call import SeatCall

if TYPE_CHECKING:
    from ivr.flow import CallFlow
    from ivr.playback import Playback
    from ivr.seat_link import SeatTimes
    from ivr.talk import Talk
    from ivr.timers import Timer

log = logging.getLogger(__name__)

HOLD_GAP_S = 8.0  # silence between two rounds of the comfort prompt


def position_prompts(position: int) -> list[str]:
    """ "您前面还有 N 位来电者在等候" for 1-9 (一, 两, then digit clips); more is "较多"."""
    if position < 1:
        return []
    if position > 9:
        return ["queue_position_many"]
    count = f"count_{position}" if position <= 2 else f"digit_{position}"
    return ["queue_position_before", count, "queue_position_after"]


def wait_prompts(seconds: float) -> list[str]:
    """ "预计等待时间约 N 分钟" (whole minutes, rounded up, 1-9); longer is "较长"; none when 0."""
    if seconds <= 0:
        return []
    minutes = max(1, math.ceil(seconds / 60))
    if minutes > 9:
        return ["queue_wait_long"]
    count = f"count_{minutes}" if minutes <= 2 else f"digit_{minutes}"
    return ["queue_wait_before", count, "queue_wait_minutes"]


class QueueWait:
    """In the ACD queue: comfort prompt and position in a loop until a seat takes the call."""

    def __init__(self, flow: CallFlow, queue: str) -> None:
        self.flow = flow
        self.queue = queue or DEFAULT_QUEUE
        self.position = 0
        self.queued = False
        self.expected_s = 0.0
        self.seat: SeatCall | None = None
        self.talking = False
        self.gone = False  # left the queue for a message or a callback
        self.entered_at: float | None = None  # the first time in a queue: kept through transfers
        self.talk: Talk | None = None  # while bridged to a seat: its call controls
        self._timer: Timer | None = None

    @property
    def playback(self) -> Playback:
        return self.flow.playback

    def start(self) -> None:
        from ivr.flow import FlowState

        flow = self.flow
        flow.move(FlowState.QUEUED)
        self.entered_at = time.time()  # the ACD's clock
        flow.note(queue=self.queue)
        opened, path, at, ctx = flow.opened, list(flow.run.path), flow.ctx.now(), flow.ctx
        ctx.offload.sql(lambda: cdr.mark_queued(ctx.factory, opened, self.queue, at, path))
        self._enqueue()
        self._round()

    def _enqueue(self, prefer: str = "", admit: bool = True) -> None:
        """Into the queue (Redis thread); offered to seat `prefer` at once if it is ready. A caller
        an agent transferred (`admit=False`) is not turned away by `acd_max_waiting`."""
        ctx, info, times = self.flow.ctx, self.flow.info, self._times()
        max_waiting = times.max_waiting if times is not None and admit else None
        aht = times.default_aht_s if times is not None else 180.0
        queue, entered_at = self.queue, self.entered_at

        def work() -> tuple[int, float, Offer | None]:
            acd = ctx.acd()
            position, offer = acd.enqueue_offering(
                info.call_id,
                queue,
                prefer,
                caller=info.caller,
                worker=ctx.record_name,
                max_waiting=max_waiting,
                entered_at=entered_at,
            )
            return position, acd.expected_wait(info.call_id, aht), offer

        ctx.offload.redis(work, on_done=self._queued, on_error=self._not_queued)

    def _times(self) -> SeatTimes | None:
        link = self.flow.ctx.seat_link
        return link.times if link is not None else None

    def _not_queued(self, exc: Exception) -> None:
        if isinstance(exc, QueueUnavailable):
            self._unavailable(exc.reason)
        # Otherwise Redis is down: tried again at the next round.

    def _queued(self, found: tuple[int, float, Offer | None]) -> None:
        if self.flow.ended or self.gone:
            return  # an offer made meanwhile is given back by the SeatLink (no caller here)
        position, self.expected_s, offer = found
        self.queued, self.position = True, position
        self.flow.publish("call.queued", queue=self.queue, position=position, caller=self.flow.info.caller)
        self._wait_for_seat()
        link = self.flow.ctx.seat_link
        if offer is not None and link is not None:
            link.deliver(offer)

    def _wait_for_seat(self) -> None:
        link = self.flow.ctx.seat_link
        if link is not None and not self.flow.ended:
            link.join(self.flow.info.call_id, self)

    # The comfort loop ------------------------------------------------------------------------
    @property
    def waiting(self) -> bool:
        return not (self.flow.ended or self.talking or self.gone)

    def _round(self) -> None:
        if self.waiting:
            self.flow.playback.play(["please_hold"], on_done=self._tell_position)

    def _tell_position(self) -> None:
        # Known by now (Redis answers in a millisecond): the first round already says it.
        if self.waiting:
            prompts = [*position_prompts(self.position), *wait_prompts(self.expected_s), "queue_options"]
            self.flow.playback.play(prompts, on_done=self._pause)

    def _pause(self) -> None:
        if self.waiting:
            self._timer = self.flow.later(HOLD_GAP_S, self._refresh)

    def _refresh(self) -> None:
        if not self.waiting:
            return
        if not self.queued:
            self._enqueue()  # Redis was down when the caller chose a person
        else:
            ctx, call_id, times = self.flow.ctx, self.flow.info.call_id, self._times()
            aht = times.default_aht_s if times is not None else 180.0
            ctx.offload.redis(
                lambda: (ctx.acd().position(call_id), ctx.acd().expected_wait(call_id, aht)),
                on_done=self._position,
                on_error=lambda _e: None,
            )
        self._round()

    def _position(self, found: tuple[int, float]) -> None:
        if found[0]:  # 0 while a seat rings: keep saying the last place
            self.position, self.expected_s = found

    # Offers (from the SeatLink) --------------------------------------------------------------
    def offered(self, extension: str) -> None:
        if self.flow.ended or self.talking or self.seat is not None:
            return  # cannot happen: one offer at a time per caller; the store frees the seat on leave
        link = self.flow.ctx.seat_link
        assert link is not None
        self.flow.publish("call.offered", seat=extension)
        self.seat = SeatCall.ring(self, self.flow, link, extension)
        if self.seat is None:
            self._wait_for_seat()

    def withdrawn(self, extension: str) -> None:
        if self.seat is not None and self.seat.extension == extension:
            self.seat.withdraw()

    # From the seat call ----------------------------------------------------------------------
    def connected(self, seat: SeatCall) -> None:
        from ivr.flow import FlowState

        flow, ctx = self.flow, self.flow.ctx
        self.talking = True
        if self._timer is not None:
            self._timer.cancel()
        flow.playback.stop()
        flow.move(FlowState.TALKING)
        flow.outcome = Disposition.ANSWERED
        flow.note(seat=seat.extension, result="answered")
        if ctx.seat_link is not None:
            ctx.seat_link.quit(flow.info.call_id)
        opened, at, ext = flow.opened, ctx.now(), seat.extension
        ctx.offload.sql(lambda: cdr.mark_answered(ctx.factory, opened, ext, at))
        flow.publish("call.answered", seat=ext, caller=flow.info.caller, queue=self.queue)
        if ctx.controls is not None:
            self.talk = ctx.controls.bridged(self, flow, seat)

    def seat_failed(self, seat: SeatCall) -> None:
        if seat is self.seat:
            self.seat = None
            self.flow.publish("call.unanswered", seat=seat.extension)
            self._wait_for_seat()

    def seat_left(self, seat: SeatCall) -> None:
        """The agent hung up first: the caller hears the goodbye, then the hotline hangs up (unless
        the agent sent the caller to the survey, another queue, or left it with a department)."""
        if self.talk is not None and self.talk.agent_left():
            return
        self.finish()

    def finish(self) -> None:
        ctx, call_id = self.flow.ctx, self.flow.info.call_id
        ctx.offload.redis(lambda: ctx.acd().leave(call_id))  # after the seat's hang-up (same thread)
        if not self.flow.ended:
            self.flow.leave(Action(ActionKind.HANGUP, prompt="goodbye"))

    def requeue(self, queue: str, prefer: str = "") -> None:
        """Transferred by the agent: waiting again in `queue` (or the same one), ahead of callers
        who came later, and offered to seat `prefer` first if it is still ready."""
        from ivr.flow import FlowState

        self.seat, self.talk, self.talking = None, None, False
        self.queue = queue or self.queue
        self.flow.move(FlowState.QUEUED)
        self.flow.publish("call.transferred", queue=self.queue, seat=prefer, caller=self.flow.info.caller)
        self._enqueue(prefer, admit=False)
        self._round()

    # Leaving the queue: a message, a callback, or the fallback ------------------------------
    def on_dtmf(self, digit: str) -> None:
        if self.talk is not None and self.talk.on_dtmf(digit):
            return
        if not self.waiting:
            return  # talking to an agent, or already leaving: keys are not for us
        if digit == "1":
            self._leave_queue("voicemail")
            self.flow.leave(Action(ActionKind.VOICEMAIL))
        elif digit == "2":
            self._book_callback(CallbackReason.VIRTUAL_HOLD)

    def _unavailable(self, reason: str) -> None:
        if not self.waiting:
            return
        times = self._times()
        fallback = times.fallback if times is not None else "voicemail"
        log.info("call %s: nobody can take it (%s): %s", self.flow.info.call_id, reason, fallback)
        self._leave_queue(reason)
        self.flow.note(queue=self.queue, result=reason, fallback=fallback)
        self.flow.playback.play(["queue_unavailable"], on_done=lambda: self._fall_back(fallback))

    def _fall_back(self, fallback: str) -> None:
        if self.flow.ended:
            return
        if fallback == "callback":
            self._book_callback(CallbackReason.FALLBACK)
        elif fallback == "voicemail":
            self.flow.leave(Action(ActionKind.VOICEMAIL))
        else:
            self.flow.leave(Action(ActionKind.HANGUP, prompt="goodbye"))

    def _leave_queue(self, why: str) -> None:
        """Out of the queue (and its seat's ringing cancelled) for a message or a callback."""
        self.gone = True
        if self._timer is not None:
            self._timer.cancel()
        self.flow.playback.stop()
        ctx, call_id = self.flow.ctx, self.flow.info.call_id
        if ctx.seat_link is not None:
            ctx.seat_link.quit(call_id)
        if self.seat is not None:
            self.seat.caller_left()
            self.seat = None
        ctx.offload.redis(lambda: ctx.acd().leave(call_id))
        self.flow.note(queue=self.queue, left=why)

    def _book_callback(self, reason: CallbackReason) -> None:
        """Virtual hold: a callback task that keeps the caller's place, then the goodbye."""
        flow, ctx = self.flow, self.flow.ctx
        if flow.ended:
            return
        if not self.gone:
            self._leave_queue(reason.value)
        opened, queue = flow.opened, self.queue
        entered = ctx.now()

        def book() -> int | None:
            with transaction(ctx.factory) as session:
                task = callbacks.book(
                    session, opened.caller, opened.call_id, reason, queue=queue, entered_at=entered
                )
                session.flush()
                return task.id if task is not None else None

        ctx.offload.sql(book, on_done=self._booked, on_error=lambda _exc: self._booked(None))

    def _booked(self, task_id: int | None) -> None:
        flow = self.flow
        if flow.ended:
            return
        flow.note(callback=task_id or "refused")
        if task_id is None:
            # No number to call back (anonymous) or no database: a person after all.
            self.gone = False
            self._enqueue()
            self._round()
            return
        flow.outcome = Disposition.CALLBACK
        flow.leave(Action(ActionKind.HANGUP, prompt=""))
        assert isinstance(flow.scene, Goodbye)
        flow.scene.say(["callback_booked", "goodbye"])

    def on_end(self) -> cdr.RecordingRef | None:
        """The caller hung up (or the worker stops): out of the queue; the seat leg goes too."""
        if self.talk is not None:
            self.talk.ended()
        if self.gone:
            return None
        if self._timer is not None:
            self._timer.cancel()
        ctx, call_id = self.flow.ctx, self.flow.info.call_id
        if ctx.seat_link is not None:
            ctx.seat_link.quit(call_id)
        if self.seat is not None:
            self.seat.caller_left()
        wrap_up_s = ctx.seat_link.times.wrap_up_s if ctx.seat_link is not None else 0.0
        ctx.offload.redis(lambda: ctx.acd().leave(call_id, wrap_up_s))
        return None
