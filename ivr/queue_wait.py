"""A caller waiting for a person: the queue, the comfort loop, the seat's phone ringing, the bridge.

The `queue` leave action of a call flow, on the pjsua2 thread. The caller is queued in the ACD
(Redis thread), joins this worker's `SeatLink`, and hears "please hold" and the position in a
loop until an offer comes. The offer rings the seat (`SeatCall`) while the caller keeps hearing
the loop; on answer the two are bridged and the call is the agent's. A seat that does not
answer (RONA), refuses, or logs out while ringing puts the caller back at the head of the queue,
and the loop goes on. When the seat hangs up first the caller hears the goodbye; when the caller
hangs up, the seat leg is hung up and the seat goes to wrap-up (or back to ready if it was ringing).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from acd.models import Disposition
from acd.seat_states import SeatEvent
from ivr import cdr
from ivr.menu import DEFAULT_QUEUE, Action, ActionKind
from ivr.seat_call import SeatCall

if TYPE_CHECKING:
    from ivr.flow import CallFlow
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


class QueueWait:
    """In the ACD queue: comfort prompt and position in a loop until a seat takes the call."""

    def __init__(self, flow: CallFlow, queue: str) -> None:
        self.flow = flow
        self.queue = queue or DEFAULT_QUEUE
        self.position = 0
        self.queued = False
        self.seat: SeatCall | None = None
        self.talking = False
        self._timer: Timer | None = None

    def start(self) -> None:
        from ivr.flow import FlowState

        flow = self.flow
        flow.move(FlowState.QUEUED)
        flow.note(queue=self.queue)
        opened, path, at, ctx = flow.opened, list(flow.run.path), flow.ctx.now(), flow.ctx
        ctx.offload.sql(lambda: cdr.mark_queued(ctx.factory, opened, self.queue, at, path))
        self._enqueue()
        self._round()

    def _enqueue(self) -> None:
        ctx, info = self.flow.ctx, self.flow.info
        ctx.offload.redis(
            lambda: ctx.acd().enqueue(info.call_id, self.queue, caller=info.caller, worker=ctx.worker),
            on_done=self._queued,
            on_error=lambda _exc: None,  # tried again at the next round
        )

    def _queued(self, position: int) -> None:
        if self.flow.ended:
            return
        self.queued, self.position = True, position
        self.flow.publish("call.queued", queue=self.queue, position=position, caller=self.flow.info.caller)
        self._wait_for_seat()

    def _wait_for_seat(self) -> None:
        link = self.flow.ctx.seat_link
        if link is not None and not self.flow.ended:
            link.join(self.flow.info.call_id, self)

    # The comfort loop ------------------------------------------------------------------------
    def _round(self) -> None:
        if not self.flow.ended and not self.talking:
            self.flow.playback.play(["please_hold"], on_done=self._tell_position)

    def _tell_position(self) -> None:
        # Known by now (Redis answers in a millisecond): the first round already says it.
        if not self.talking:
            self.flow.playback.play(position_prompts(self.position), on_done=self._pause)

    def _pause(self) -> None:
        if not self.talking:
            self._timer = self.flow.later(HOLD_GAP_S, self._refresh)

    def _refresh(self) -> None:
        if self.flow.ended or self.talking:
            return
        if not self.queued:
            self._enqueue()  # Redis was down when the caller chose a person
        else:
            ctx, call_id = self.flow.ctx, self.flow.info.call_id
            ctx.offload.redis(
                lambda: ctx.acd().position(call_id), on_done=self._position, on_error=lambda _e: None
            )
        self._round()

    def _position(self, position: int) -> None:
        if position:  # 0 while a seat rings: keep saying the last place
            self.position = position

    # Offers (from the SeatLink) --------------------------------------------------------------
    def offered(self, extension: str) -> None:
        if self.flow.ended or self.talking or self.seat is not None:
            return  # cannot happen: one offer at a time per caller; the store frees the seat on leave
        link = self.flow.ctx.seat_link
        assert link is not None
        self.seat = SeatCall(self, self.flow, link, extension)
        self.flow.publish("call.offered", seat=extension)
        if not self.seat.start():
            # This worker cannot place the call: the offer goes back, the seat stays ready.
            self.seat = None
            ctx, call_id = self.flow.ctx, self.flow.info.call_id
            ctx.offload.redis(lambda: ctx.acd().seat_event(extension, SeatEvent.CANCEL, call_id=call_id))
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

    def seat_failed(self, seat: SeatCall) -> None:
        if seat is self.seat:
            self.seat = None
            self.flow.publish("call.unanswered", seat=seat.extension)
            self._wait_for_seat()

    def seat_left(self, seat: SeatCall) -> None:
        """The agent hung up first: the caller hears the goodbye, then the hotline hangs up."""
        ctx, call_id = self.flow.ctx, self.flow.info.call_id
        ctx.offload.redis(lambda: ctx.acd().leave(call_id))  # after the seat's hang-up (same thread)
        if not self.flow.ended:
            self.flow.leave(Action(ActionKind.HANGUP, prompt="goodbye"))

    def on_dtmf(self, digit: str) -> None:
        pass  # keys while waiting: voicemail and callback offers are not built yet

    def on_end(self) -> cdr.RecordingRef | None:
        """The caller hung up (or the worker stops): out of the queue; the seat leg goes too."""
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
