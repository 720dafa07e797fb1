"""The seat leg of one waiting caller: ring the seat's phone, bridge on answer, record the agent.

Runs on the pjsua2 thread as the `DialListener` of the call it places to `sip:<extension>@<edge>`
(Kamailio finds the phone registered for the extension). Its life:

    ringing -> confirming -> talking -> ended      (answered; the store agreed to the answer)
    ringing -> ended                              (RONA, refused, withdrawn, caller gone)

An answer is taken only when the store still shows the offer (`seat_event(ANSWER, call_id=...)`
is refused if the seat logged out meanwhile): until then the agent hears silence, for the
millisecond Redis takes. What each ending means for the seat is written here (RONA: not ready,
the call back at the head of its queue; a hang-up while talking: wrap-up), except for a caller
who hung up: then the caller's `leave` frees or wraps up the seat in one step.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, Any, Protocol

from acd.seat_states import SeatEvent, SeatTransitionError
from ivr import cdr
from ivr.legs import Leg, LegEvent, LegKind, TransitionError
from ivr.sip import SipError

if TYPE_CHECKING:
    from acd.store import Change
    from ivr.context import IvrContext
    from ivr.seat_link import SeatLink
    from ivr.sip import SipLeg
    from ivr.timers import Timer

log = logging.getLogger(__name__)

RONA_REASON = "rona"  # acd.seat_states.NOT_READY_REASONS: 未接听


class SeatCallState(enum.StrEnum):
    RINGING = "ringing"
    CONFIRMING = "confirming"  # answered; asking the store whether the offer still stands
    TALKING = "talking"
    ENDED = "ended"


class CallerInfo(Protocol):
    @property
    def call_id(self) -> str: ...

    @property
    def caller(self) -> str:
        """The citizen's number, shown on the agent's phone."""


class CallerSide(Protocol):
    """The citizen's call a seat is bridged to: an inbound `CallFlow`, or a callback
    (`ivr.callback_call.CallbackCall`)."""

    @property
    def ctx(self) -> IvrContext: ...

    @property
    def info(self) -> CallerInfo: ...

    @property
    def leg(self) -> SipLeg: ...

    @property
    def extra_recordings(self) -> list[cdr.RecordingRef]: ...

    def later(self, delay_s: float, job: Any) -> Timer: ...

    def note(self, **entry: Any) -> None: ...


class SeatOwner(Protocol):
    """The caller's side (`QueueWait`): told when the seat is there, gone, or never came."""

    def connected(self, seat: SeatCall) -> None: ...

    def seat_failed(self, seat: SeatCall) -> None: ...

    def seat_left(self, seat: SeatCall) -> None: ...


class SeatCall:
    def __init__(
        self,
        owner: SeatOwner,
        flow: CallerSide,
        link: SeatLink,
        extension: str,
        *,
        bridge_caller: bool = True,
    ) -> None:
        self.owner = owner
        # False for a colleague an agent consults (attended transfer): answered and recorded, but
        # joined to the caller only when the agent completes the transfer (ivr.call_control).
        self.bridge_caller = bridge_caller
        self.flow = flow
        self.link = link
        self.extension = extension
        self.state = SeatCallState.RINGING
        self.leg: SipLeg | None = None
        self.info = Leg(sip_call_id="", caller="", caller_uri="", called=extension, kind=LegKind.SEAT)
        self.recording: cdr.RecordingRef | None = None
        self.leg_name = cdr.AGENT_LEG  # "agent-2" for the seat a call was transferred to
        self._ending = ""  # why we hang up ourselves: rona, withdrawn, caller_left, refused
        self._media = False
        self._bridged = False
        self._timer: Timer | None = None

    @property
    def call_id(self) -> str:
        return self.flow.info.call_id

    @classmethod
    def ring(cls, owner: SeatOwner, flow: CallerSide, link: SeatLink, extension: str) -> SeatCall | None:
        """Ring the offered seat; None if no call could be placed (the offer is given back and the
        seat is ready again, the caller keeps waiting)."""
        seat = cls(owner, flow, link, extension)
        if seat.start():
            return seat
        ctx, call_id = flow.ctx, flow.info.call_id
        ctx.offload.redis(lambda: ctx.acd().seat_event(extension, SeatEvent.CANCEL, call_id=call_id))
        return None

    # Starting --------------------------------------------------------------------------------
    def start(self) -> bool:
        """Ring the seat's phone; False if no call could be placed (the offer is given back)."""
        ctx = self.flow.ctx
        host = ctx.edge_address
        caller = self.flow.info.caller or "anonymous"
        try:
            self.link.legs.add(self.info)  # the leg reserved for this caller when it was admitted
        except TransitionError:
            log.error("call %s: no leg left for seat %s", self.call_id, self.extension)
            return False
        try:
            # The caller's number as From: the agent's phone shows who is calling.
            self.leg = self.link.edge.dial(
                f"sip:{self.extension}@{host}", self, from_uri=f"sip:{caller}@{host}"
            )
        except SipError as exc:
            log.warning("call %s: cannot ring seat %s: %s", self.call_id, self.extension, exc)
            self.link.legs.remove(self.info.call_id)
            return False
        self.info.sip_call_id = self.leg.sip_call_id
        self._timer = self.flow.later(self.link.times.ring_timeout_s, self._no_answer)
        log.info("call %s: ringing seat %s", self.call_id, self.extension)
        return True

    # What the edge reports (DialListener) ----------------------------------------------------
    def on_answered(self, leg: SipLeg) -> None:
        if self.state is not SeatCallState.RINGING:
            return
        self.state = SeatCallState.CONFIRMING
        self._cancel_timer()
        self.info.apply(LegEvent.ANSWER)
        ctx, ext, call_id = self.flow.ctx, self.extension, self.call_id
        ctx.offload.redis(
            lambda: ctx.acd().seat_event(ext, SeatEvent.ANSWER, call_id=call_id),
            on_done=self._confirmed,
            on_error=self._not_confirmed,
        )

    def on_media_ready(self, leg: SipLeg) -> None:
        self._media = True
        self._bridge()

    def on_dtmf(self, leg: SipLeg, digit: str, method: str) -> None:
        pass  # keys from the agent's phone mean nothing to the caller's call

    def on_transfer_status(self, leg: SipLeg, status_code: int, reason: str, final: bool) -> None:
        pass

    def on_disconnected(self, leg: SipLeg, status_code: int, reason: str) -> None:
        self.link.legs.remove(self.info.call_id)
        self.info.apply(LegEvent.HANG_UP)
        before, self.state = self.state, SeatCallState.ENDED
        self._cancel_timer()
        ctx, ext, call_id = self.flow.ctx, self.extension, self.call_id
        if ctx.transcripts is not None:
            ctx.transcripts.leg_ended(call_id, self.leg_name)  # its last words are still decoded
        log.info(
            "call %s: seat %s leg ended (%d %s) while %s", call_id, ext, status_code, reason, before.value
        )
        if self._ending == "caller_left" or before is SeatCallState.ENDED:
            return  # the caller's leave frees or wraps up the seat
        if before is SeatCallState.TALKING:
            wrap_up_s = self.link.times.wrap_up_s
            ctx.offload.redis(
                lambda: ctx.acd().seat_event(ext, SeatEvent.HANGUP, call_id=call_id, wrap_up_s=wrap_up_s),
                on_error=lambda exc: log.warning("seat %s: hang-up not recorded: %s", ext, exc),
            )
            self.owner.seat_left(self)
            return
        if self._ending in ("withdrawn", "refused"):
            self.owner.seat_failed(self)  # the store has moved on already
            return
        # No answer in time, or the phone refused (busy, declined, not registered): RONA.
        self.flow.note(seat=ext, result="rona", sip_status=status_code)
        ctx.offload.redis(
            lambda: ctx.acd().seat_event(ext, SeatEvent.RONA, reason=RONA_REASON, call_id=call_id),
            on_error=lambda exc: log.info("seat %s: RONA not applied: %s", ext, exc),
        )
        self.owner.seat_failed(self)

    # Decisions -------------------------------------------------------------------------------
    def _no_answer(self) -> None:
        self._timer = None
        if self.state is SeatCallState.RINGING:
            self._hang_up("rona")

    def withdraw(self) -> None:
        """The store took the offer back (the seat logged out while ringing)."""
        if self.state in (SeatCallState.RINGING, SeatCallState.CONFIRMING):
            self._hang_up("withdrawn")

    def caller_left(self) -> None:
        self._hang_up("caller_left")

    def hang_up(self) -> None:
        """End the seat's leg as if the agent had hung up (the seat wraps up)."""
        self._hang_up("")

    def _confirmed(self, change: Change) -> None:
        if self.state is not SeatCallState.CONFIRMING:
            return  # the caller left meanwhile: its leave wraps the seat up
        self.state = SeatCallState.TALKING
        self.owner.connected(self)
        self._bridge()

    def _not_confirmed(self, exc: Exception) -> None:
        if isinstance(exc, SeatTransitionError | KeyError):
            log.info(
                "call %s: seat %s answered an offer it no longer had: %s", self.call_id, self.extension, exc
            )
        self._hang_up("refused")

    def _bridge(self) -> None:
        if self._bridged or self.state is not SeatCallState.TALKING or not self._media or self.leg is None:
            return
        if self.bridge_caller and not self.flow.leg.bridge(self.leg):
            return  # audio not up yet on one side: tried again when it is
        self._bridged = True
        ctx, call_id = self.flow.ctx, self.call_id
        self.leg_name = leg = cdr.next_leg(cdr.AGENT_LEG, self.flow.extra_recordings)
        ctx.offload.sql(
            lambda: cdr.register_recording(ctx.factory, ctx.recordings_root, call_id, leg),
            on_done=self._record,
            on_error=lambda exc: log.warning("call %s: agent leg not recorded: %s", call_id, exc),
        )

    def _record(self, ref: cdr.RecordingRef) -> None:
        if (
            self.state is SeatCallState.TALKING
            and self.leg is not None
            and self.leg.start_recording(ref.path)
        ):
            self.recording = ref
            self.flow.extra_recordings.append(ref)
            transcripts = self.flow.ctx.transcripts
            if transcripts is not None:
                transcripts.leg_started(self.call_id, self.leg_name, ref.path, seat=self.extension)
            return
        ctx = self.flow.ctx
        ctx.offload.sql(lambda: cdr.drop_recordings(ctx.factory, (ref,)))

    def _hang_up(self, why: str) -> None:
        if self.state is SeatCallState.ENDED:
            return
        self._ending = self._ending or why
        self._cancel_timer()
        if self.leg is not None:
            self.leg.hangup()  # its DISCONNECTED (on_disconnected) finishes the job

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
