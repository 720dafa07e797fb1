"""The attended transfer (咨询转接) of a bridged call: the agent consults a colleague, then hands
the caller over or comes back. A mixin of `ivr.talk.Talk` (its state is Talk's), kept apart so
that each module holds one story; runs on the pjsua2 thread like Talk.

The colleague's seat is reserved in the ACD (`AcdStore.reserve`), its phone rung as a second
`SeatCall` of this call that is not bridged to the caller; the caller hears music meanwhile and
the agent's seat shows `held`. Completing bridges the colleague to the caller and makes it the
call's seat (`AcdStore.hand_over`); cancelling, or the colleague not answering, brings the agent
back to the caller.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from acd.controls import Command, result_rooms
from acd.seat_states import SeatEvent
from ivr.seat_call import SeatCall, SeatCallState

if TYPE_CHECKING:
    from ivr.call_control import CallControls
    from ivr.context import IvrContext
    from ivr.seat_call import CallerSide
    from ivr.talk import TalkOwner
    from ivr.talk_legs import OtherLeg

log = logging.getLogger(__name__)


class Consultation:
    """The consultation half of `Talk`: the attributes below are Talk's."""

    controls: CallControls
    owner: TalkOwner
    side: CallerSide
    seat: SeatCall
    held: bool
    agent_gone: bool
    over: bool
    after_agent: str
    party: OtherLeg | None
    consult: SeatCall | None  # the colleague rung for an attended transfer
    _consulting: Command | None  # the consult command, until its one answer

    @property
    def call_id(self) -> str:
        return self.side.info.call_id

    @property
    def ctx(self) -> IvrContext:
        return self.controls.ctx

    def _music(self) -> None:
        raise NotImplementedError  # Talk's hold music

    def _connect_supervisor(self) -> None:
        raise NotImplementedError  # Talk's: who hears the supervisor

    def _consult(self, command: Command) -> None:
        extension, link, ctx = command.target, self.ctx.seat_link, self.ctx
        if self.agent_gone or self.consult is not None or self.party is not None or link is None:
            self.controls.reply(command, "not_allowed")
            return
        if extension == self.seat.extension:
            self.controls.reply(command, "not_allowed")
            return
        if not self.controls.legs.can_add_party():
            self.controls.reply(command, "no_room")
            return
        call_id = self.call_id
        ctx.offload.redis(
            lambda: ctx.acd().reserve(call_id, extension),
            on_done=lambda _change: self._reserved(command, extension),
            on_error=lambda _exc: self.controls.reply(command, "seat_busy"),
        )

    def _release(self, extension: str) -> None:
        """A colleague's seat reserved for a consultation goes back to ready (Redis thread)."""
        ctx, call_id = self.ctx, self.call_id
        ctx.offload.redis(lambda: ctx.acd().seat_event(extension, SeatEvent.CANCEL, call_id=call_id))

    def _reserved(self, command: Command, extension: str) -> None:
        ctx, call_id, link = self.ctx, self.call_id, self.ctx.seat_link
        if self.over or self.agent_gone or self.consult is not None or link is None:
            self._release(extension)
            self.controls.reply(command, "no_call")
            return
        seat = SeatCall(self, self.side, link, extension, bridge_caller=False)
        if not seat.start():
            self._release(extension)
            self.controls.reply(command, "failed")
            return
        self.consult, self._consulting = seat, command
        self.side.note(consult=extension)
        # The caller waits with music meanwhile, and the agent's seat shows it (held).
        ext = self.seat.extension
        ctx.offload.redis(
            lambda: ctx.acd().seat_event(ext, SeatEvent.HOLD, call_id=call_id),
            on_error=lambda exc: log.info("seat %s: hold for a consultation not recorded: %s", ext, exc),
        )
        self.held = True
        if self.seat.leg is not None:
            self.side.leg.unbridge(self.seat.leg)
        self.owner.playback.play(["hold_notice"], on_done=self._music)

    # The consulted colleague's SeatCall reports here (SeatOwner).
    def connected(self, seat: SeatCall) -> None:
        if seat is not self.consult:
            return
        if self.agent_gone:
            self._hand_over(seat)
            return
        if seat.leg is not None and self.seat.leg is not None:
            seat.leg.bridge(self.seat.leg)  # agent and colleague talk; the caller hears music
        self._answer_consult("")

    def seat_failed(self, seat: SeatCall) -> None:
        if seat is not self.consult:
            return
        self.consult = None
        self._answer_consult("failed")
        self._back_to_agent()

    def seat_left(self, seat: SeatCall) -> None:
        if seat is self.consult:  # the colleague hung up before the transfer was completed
            self.consult = None
            self._back_to_agent()

    def _answer_consult(self, error: str) -> None:
        """The consult command's one answer: the colleague is on (""), or is not coming."""
        command, self._consulting = self._consulting, None
        if command is not None:
            self.controls.reply(command, error)

    def _back_to_agent(self) -> None:
        if self.over or self.agent_gone:
            return
        ctx, ext, call_id = self.ctx, self.seat.extension, self.call_id
        ctx.offload.redis(
            lambda: ctx.acd().seat_event(ext, SeatEvent.UNHOLD, call_id=call_id),
            on_error=lambda exc: log.info("seat %s: back from a consultation not recorded: %s", ext, exc),
        )
        self.held = False
        self.owner.playback.stop()
        if self.seat.leg is not None:
            self.side.leg.bridge(self.seat.leg)
        self.side.note(consult="ended")

    def _drop_consult(self) -> None:
        """Stop consulting: the colleague's leg ends (wrap-up if it talked, ready if it rang)."""
        seat, self.consult = self.consult, None
        if seat is None:
            return
        self._answer_consult("cancelled")  # still ringing: the consultation did not happen
        if seat.state is SeatCallState.TALKING:
            seat.hang_up()
        else:
            seat.withdraw()
            self._release(seat.extension)
        self._back_to_agent()

    def _hand_over(self, seat: SeatCall) -> None:
        """The colleague takes the call: joined to the caller, and the call's seat from now on."""
        self.consult, self.after_agent = None, ""
        previous, self.seat = self.seat, seat
        seat.owner = self.owner
        self.owner.seat = seat
        self.agent_gone = False
        self.held = False
        self.owner.playback.stop()
        if seat.leg is not None:
            if previous.leg is not None:
                previous.leg.unbridge(seat.leg)
            self.side.leg.bridge(seat.leg)
        ctx, call_id, ext = self.ctx, self.call_id, seat.extension
        ctx.offload.redis(lambda: ctx.acd().hand_over(call_id, ext))
        self.side.note(transfer="attended", seat=ext)
        ctx.events.publish(
            "call.transferred",
            {"call_id": call_id, "seat": ext, "from_seat": previous.extension, "worker": ctx.worker},
            result_rooms(None),
        )
        self._connect_supervisor()
