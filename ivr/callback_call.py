"""漏接回拨 by phone: the outbound scene that puts a called-back citizen through to an agent.

`ivr.callback_placer` asks for the call (`ivr.outbound`, scene "callback") when a seat could take
it. Once the citizen answers: "您好，这里是12345…现在为您转接话务员" and the recording notice, then
the citizen's leg is recorded and queued at the place the task kept (`entered_at`), offered, rung
and bridged exactly like a caller who dialled in (`SeatCall`), with "please hold" in a loop
meanwhile. The outcome (`bridged`, `seat`) goes into the outbound result, from which the placer
closes the task. Runs on the pjsua2 thread, as every scene.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

from ivr import cdr
from ivr.flow import WALLBOARD_ROOMS
from ivr.seat_call import SeatCall

if TYPE_CHECKING:
    from acd.store import Offer
    from ivr.context import IvrContext
    from ivr.dialer import OutboundCall
    from ivr.playback import Playback
    from ivr.sip import SipLeg
    from ivr.talk import Talk
    from ivr.timers import Timer

log = logging.getLogger(__name__)

HOLD_GAP_S = 4.0
_NUMBER = re.compile(r"^(?:sips?:)?([^@;>]+)")


class CallbackInfo:
    def __init__(self, call_id: str, caller: str) -> None:
        self.call_id = call_id
        self.caller = caller


class CallbackCall:
    def __init__(self, call: OutboundCall) -> None:
        self.call = call
        data = call.request.data
        self.task_id = int(data["task_id"])
        self.queue = str(data.get("queue") or "general")
        self.entered_at = float(data.get("entered_at") or 0) or None
        match = _NUMBER.match(call.request.target)
        self.info = CallbackInfo(call.call_id, match.group(1) if match else call.request.target)
        self.extra_recordings: list[cdr.RecordingRef] = []
        self.seat: SeatCall | None = None
        self.talking = False
        self.ended = False
        self.talk: Talk | None = None  # while bridged to a seat: its call controls
        self._timer: Timer | None = None

    # What SeatCall needs of the citizen's side (ivr.seat_call.CallerSide) ----------------------
    @property
    def ctx(self) -> IvrContext:
        return self.call.ctx

    @property
    def playback(self) -> Playback:
        playback: Playback = self.call.playback
        return playback

    @property
    def leg(self) -> SipLeg:
        leg: SipLeg = self.call.leg
        return leg

    def later(self, delay_s: float, job: Any) -> Timer:
        assert self.ctx.scheduler is not None
        return self.ctx.scheduler.call_later(delay_s, job)

    def note(self, **entry: Any) -> None:
        self.call.note(**entry)

    # The scene -----------------------------------------------------------------------------------
    def start(self) -> None:
        self.call.outcome.update(task_id=self.task_id, bridged=False)
        self.call.on_recording = self._recording
        self.call.announce(["callback_intro"], self._notice_played)

    def _notice_played(self) -> None:
        self._enqueue()

    def _enqueue(self, prefer: str = "") -> None:
        """In the queue at the place the task kept, with "please hold" in a loop meanwhile; offered
        to seat `prefer` at once if it is ready (an agent's transfer to a colleague)."""
        if self.entered_at is None:
            self.entered_at = time.time()  # the ACD's clock; kept if the agent transfers the call
        ctx, call_id = self.ctx, self.info.call_id
        caller, queue, entered_at, worker = self.info.caller, self.queue, self.entered_at, ctx.record_name

        def work() -> Offer | None:
            _position, offer = ctx.acd().enqueue_offering(
                call_id, queue, prefer, caller=caller, worker=worker, entered_at=entered_at
            )
            return offer

        ctx.offload.redis(
            work, on_done=self._queued, on_error=lambda exc: self._give_up(f"not queued: {exc}")
        )
        self._hold()

    def _queued(self, offer: Offer | None) -> None:
        self._wait()
        link = self.ctx.seat_link
        if offer is not None and link is not None and not self.ended:
            link.deliver(offer)

    def _recording(self, ref: cdr.RecordingRef) -> None:
        if self.ctx.transcripts is not None:
            self.ctx.transcripts.leg_started(self.info.call_id, cdr.CALLER_LEG, ref.path)

    def _wait(self) -> None:
        link = self.ctx.seat_link
        if link is not None and not self.ended and not self.talking:
            link.join(self.info.call_id, self)

    def _hold(self) -> None:
        if not self.ended and not self.talking:
            self.call.playback.play(["please_hold"], on_done=self._pause)

    def _pause(self) -> None:
        if not self.ended and not self.talking:
            self._timer = self.later(HOLD_GAP_S, self._hold)

    def _give_up(self, why: str) -> None:
        log.warning("callback %s: %s", self.task_id, why)
        self.note(callback=self.task_id, result=why)
        if not self.ended:
            self.call.playback.play(["goodbye"], on_done=self._hang_up)

    def _hang_up(self) -> None:
        self.leg.hangup()

    def on_dtmf(self, digit: str) -> None:
        if self.talk is not None:
            self.talk.on_dtmf(digit)

    # Offers (ivr.seat_link.Waiter) and the seat (ivr.seat_call.SeatOwner) -------------------------
    def offered(self, extension: str) -> None:
        link = self.ctx.seat_link
        if self.ended or self.talking or self.seat is not None or link is None:
            return
        self.seat = SeatCall.ring(self, self, link, extension)
        if self.seat is None:
            self._wait()

    def withdrawn(self, extension: str) -> None:
        if self.seat is not None and self.seat.extension == extension:
            self.seat.withdraw()

    def connected(self, seat: SeatCall) -> None:
        self.talking = True
        if self._timer is not None:
            self._timer.cancel()
        self.call.playback.stop()
        ctx, call = self.ctx, self.call
        if ctx.seat_link is not None:
            ctx.seat_link.quit(self.info.call_id)
        call.outcome.update(bridged=True, seat=seat.extension)
        self.note(seat=seat.extension, result="answered")
        opened = cdr.CallOpened(
            call.call_id, self.info.caller, call.request.target, ctx.record_name, call.dialed_at, ctx.now()
        )
        at, ext = ctx.now(), seat.extension
        ctx.offload.sql(lambda: cdr.mark_answered(ctx.factory, opened, ext, at))
        ctx.events.publish(
            "call.answered",
            {"call_id": call.call_id, "worker": ctx.worker, "seat": ext, "caller": self.info.caller,
             "queue": self.queue, "callback": self.task_id},
            WALLBOARD_ROOMS,
        )  # fmt: skip
        if ctx.controls is not None:
            self.talk = ctx.controls.bridged(self, self, seat)

    def seat_failed(self, seat: SeatCall) -> None:
        if seat is self.seat:
            self.seat = None
            self._wait()

    def seat_left(self, seat: SeatCall) -> None:
        if self.talk is not None and self.talk.agent_left():
            return
        self.finish()

    def finish(self) -> None:
        ctx, call_id = self.ctx, self.info.call_id
        ctx.offload.redis(lambda: ctx.acd().leave(call_id))
        if not self.ended:
            self.call.playback.play(["goodbye"], on_done=self._hang_up)

    def requeue(self, queue: str, prefer: str = "") -> None:
        """Transferred by the agent: waiting again (in `queue`, or the same one) at the place the
        task kept, offered to seat `prefer` first if it is still ready."""
        self.seat, self.talk, self.talking = None, None, False
        self.queue = queue or self.queue
        self._enqueue(prefer)

    def on_end(self) -> None:
        """The citizen hung up (or the agent did and the goodbye was said)."""
        self.ended = True
        if self.talk is not None:
            self.talk.ended()
        if self._timer is not None:
            self._timer.cancel()
        ctx, call_id = self.ctx, self.info.call_id
        if ctx.transcripts is not None:
            ctx.transcripts.call_ended(call_id)
        if ctx.seat_link is not None:
            ctx.seat_link.quit(call_id)
        if self.seat is not None:
            self.seat.caller_left()
        wrap_up_s = ctx.seat_link.times.wrap_up_s if ctx.seat_link is not None else 0.0
        ctx.offload.redis(lambda: ctx.acd().leave(call_id, wrap_up_s))
        refs, root = tuple(self.extra_recordings), ctx.recordings_root
        if refs:
            ctx.offload.sql(lambda: cdr.seal_recordings(ctx.factory, root, refs))
