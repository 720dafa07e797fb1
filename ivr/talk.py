"""One caller bridged to a seat in a worker, and what the agent's and supervisor's commands do to
it: hold, the agent leaving (hang-up, survey, transfers), a third party, a consulted colleague, a
supervisor listening. Built and driven by `ivr.call_control.CallControls` on the pjsua2 thread;
the media behaviour of each action is described there.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Protocol

from acd.controls import Action, Command, result_rooms
from acd.seat_states import SeatEvent, SeatState
from ivr.seat_call import SeatCall, SeatCallState, SeatOwner
from ivr.talk_legs import PARTY_LEG, OtherLeg, Survey

if TYPE_CHECKING:
    from ivr.call_control import CallControls
    from ivr.context import IvrContext
    from ivr.playback import Playback
    from ivr.seat_call import CallerSide

log = logging.getLogger(__name__)

PARTY_RING_S = 30.0  # a department or emergency line that does not answer in this time: failed
SUPERVISOR_RING_S = 20.0
HOLD_MUSIC = "hold_music"
_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
_URI = re.compile(r"^sips?:[^\s<>\"]+$")


class TalkOwner(SeatOwner, Protocol):
    """The caller's side of a bridged call (`QueueWait`, `CallbackCall`)."""

    seat: SeatCall | None

    @property
    def playback(self) -> Playback: ...

    def requeue(self, queue: str, prefer: str = "") -> None:
        """Wait in `queue` (or the same queue) again, keeping the first entry time, offered to seat
        `prefer` first if it is still ready; the agent has left."""

    def finish(self) -> None:
        """Nobody is left for the caller: the goodbye, then the hotline hangs up."""


class Talk:
    """One caller bridged to a seat in this worker, and whoever joins them."""

    def __init__(self, controls: CallControls, owner: TalkOwner, side: CallerSide, seat: SeatCall) -> None:
        self.controls = controls
        self.owner = owner
        self.side = side
        self.seat = seat
        self.held = False
        self.agent_gone = False
        self.over = False
        self.after_agent = ""  # what the caller gets once the agent's leg is gone: survey / queue
        self.after_target = ""
        self.party: OtherLeg | None = None
        self.supervisor: OtherLeg | None = None
        self.mode = Action.LISTEN
        self.survey: Survey | None = None
        self.consult: SeatCall | None = None  # the colleague rung for an attended transfer
        self._consulting: Command | None = None

    @property
    def call_id(self) -> str:
        return self.side.info.call_id

    @property
    def ctx(self) -> IvrContext:
        return self.controls.ctx

    # Commands ----------------------------------------------------------------------------------
    def carry_out(self, command: Command) -> None:
        action = command.action
        reply = self.controls.reply
        if action in (Action.HOLD, Action.RESUME):
            self._hold(command, action is Action.HOLD)
        elif action is Action.HANG_UP:
            self._agent_leaves(command, "")
        elif action is Action.SURVEY:
            self._agent_leaves(command, "survey")
        elif action is Action.TRANSFER_QUEUE:
            self._agent_leaves(command, "queue", command.target)
        elif action is Action.TRANSFER_SEAT:
            self._transfer_to_seat(command)
        elif action is Action.CONSULT:
            self._consult(command)
        elif action is Action.COMPLETE_TRANSFER:
            if self.consult is None or self.consult.state is not SeatCallState.TALKING:
                reply(command, "not_allowed")
            else:
                self._agent_leaves(command, "consulted")
        elif action is Action.CANCEL_CONSULT:
            if self.consult is None:
                reply(command, "not_allowed")
            else:
                self._drop_consult()
                reply(command)
        elif action in (Action.TRANSFER_NUMBER, Action.EMERGENCY):
            self._call_party(command)
        elif action is Action.DROP_AGENT:
            if self.party is None or not self.party.connected:
                reply(command, "not_allowed")
            else:
                self._agent_leaves(command, "")
        elif action in (Action.LISTEN, Action.WHISPER, Action.BARGE):
            self._supervise(command)
        elif action is Action.STOP_LISTENING:
            if self.supervisor is None:
                reply(command, "not_allowed")
            else:
                self.supervisor.hang_up()
                reply(command)

    def _hold(self, command: Command, hold: bool) -> None:
        if self.agent_gone or hold == self.held or self.consult is not None:
            self.controls.reply(command, "not_allowed")
            return
        ctx, ext, call_id = self.ctx, self.seat.extension, self.call_id
        event = SeatEvent.HOLD if hold else SeatEvent.UNHOLD
        ctx.offload.redis(
            lambda: ctx.acd().seat_event(ext, event, call_id=call_id),
            on_done=lambda _change: self._held(command, hold),
            on_error=lambda _exc: self.controls.reply(command, "not_allowed"),
        )

    def _held(self, command: Command, hold: bool) -> None:
        if self.over or self.agent_gone:
            self.controls.reply(command, "no_call")
            return
        self.held = hold
        caller, agent = self.side.leg, self.seat.leg
        if hold:
            if agent is not None:
                caller.unbridge(agent)
            self.owner.playback.play(["hold_notice"], on_done=self._music)
        else:
            self.owner.playback.stop()
            if agent is not None:
                caller.bridge(agent)
        self._connect_supervisor()
        self.ctx.events.publish(
            "call.held" if hold else "call.resumed",
            {"call_id": self.call_id, "seat": self.seat.extension, "worker": self.ctx.worker},
            result_rooms(command.by_user),
        )
        self.controls.reply(command)

    def _music(self) -> None:
        if self.held and not self.over:
            self.owner.playback.play([HOLD_MUSIC], on_done=self._music)

    def _agent_leaves(self, command: Command, after: str, target: str = "") -> None:
        if self.agent_gone or self.seat.leg is None:
            self.controls.reply(command, "no_call")
            return
        self.after_agent, self.after_target = after, target
        self.seat.leg.hangup()  # SeatCall wraps the seat up, then the owner asks `agent_left`
        self.controls.reply(command)

    def _transfer_to_seat(self, command: Command) -> None:
        extension = command.target
        if extension == self.seat.extension or self.agent_gone:
            self.controls.reply(command, "not_allowed")
            return
        ctx = self.ctx

        def checked(seat: Any) -> None:
            if seat.state is not SeatState.READY or not seat.registered:
                self.controls.reply(command, "seat_busy")
            else:
                self._agent_leaves(command, "seat", extension)

        ctx.offload.redis(
            lambda: ctx.acd().seat(extension),
            on_done=checked,
            on_error=lambda _exc: self.controls.reply(command, "bad_target"),
        )

    def agent_left(self) -> bool:
        """The agent's leg is gone; True if the call goes on here without the owner's goodbye."""
        self.agent_gone = True
        if self.held:
            self.held = False
            self.owner.playback.stop()
        if self.over:
            return False
        if self.consult is not None:
            if self.consult.state is SeatCallState.TALKING:
                self._hand_over(self.consult)  # completed, or the agent hung up on the colleague
                return True
            # The colleague's phone still rings: the caller waits in the queue rather than alone.
            self._drop_consult()
            self.controls.forget(self)
            self.side.note(transfer="queue", queue="", why="consult_unanswered")
            self.owner.requeue("")
            return True
        if self.after_agent == "survey":
            self.survey = Survey(self)
            self.survey.start()
            return True
        if self.after_agent in ("queue", "seat"):
            self._hang_up_others()
            self.controls.forget(self)
            if self.after_agent == "queue":
                self.side.note(transfer="queue", queue=self.after_target)
                self.owner.requeue(self.after_target)
            else:
                self.side.note(transfer="seat", seat=self.after_target)
                self.owner.requeue("", prefer=self.after_target)
            return True
        if self.party is not None and self.party.connected:
            self._connect_supervisor()
            return True  # the caller stays with the department (三方通话, agent gone)
        return False

    # Attended transfer ---------------------------------------------------------------------------
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

    def _call_party(self, command: Command) -> None:
        target = command.target
        if command.action is Action.EMERGENCY and target not in self.controls.emergency_numbers:
            self.controls.reply(command, "bad_target")
            return
        if not (_NUMBER.match(target) or _URI.match(target)):
            self.controls.reply(command, "bad_target")
            return
        if self.party is not None:
            self.controls.reply(command, "not_allowed")
            return
        self.party = OtherLeg.dial(self, command, PARTY_LEG, target, PARTY_RING_S)

    def _supervise(self, command: Command) -> None:
        if self.supervisor is not None:
            if command.target != self.supervisor.target:
                self.controls.reply(command, "not_allowed")  # one supervisor at a time
                return
            self.mode = command.action
            self._connect_supervisor()
            self.controls.reply(command, mode=self.mode.value)
            return
        if not command.target.isdigit():
            self.controls.reply(command, "bad_target")
            return
        self.mode = command.action
        self.supervisor = OtherLeg.dial(self, command, "supervisor", command.target, SUPERVISOR_RING_S)

    # The other legs ----------------------------------------------------------------------------
    def other_connected(self, other: OtherLeg) -> None:
        if other is self.party:
            self._connect_party()
        self._connect_supervisor()

    def other_gone(self, other: OtherLeg) -> None:
        if other is self.supervisor:
            self.supervisor = None
        elif other is self.party:
            self.party = None
            if self.agent_gone and self.survey is None and not self.over:
                self.owner.finish()  # the department hung up and no agent is left

    def _connect_party(self) -> None:
        party = self.party
        if party is None or party.leg is None:
            return
        party.leg.bridge(self.side.leg)
        if not self.agent_gone and self.seat.leg is not None:
            party.leg.bridge(self.seat.leg)

    def _connect_supervisor(self) -> None:
        """Set who hears the supervisor and whom the supervisor hears, by the mode."""
        sup = self.supervisor
        if sup is None or sup.leg is None or not sup.connected:
            return
        caller = self.side.leg
        agent = None if self.agent_gone else self.seat.leg
        party = self.party.leg if self.party is not None and self.party.connected else None
        for leg in (caller, agent, party):
            if leg is not None:
                leg.send_to(sup.leg)
        speaks_to_agent = self.mode in (Action.WHISPER, Action.BARGE)
        speaks_to_all = self.mode is Action.BARGE
        for leg, on in ((agent, speaks_to_agent), (caller, speaks_to_all), (party, speaks_to_all)):
            if leg is None:
                continue
            if on:
                sup.leg.send_to(leg)
            else:
                sup.leg.stop_sending_to(leg)

    def _hang_up_others(self) -> None:
        for other in (self.party, self.supervisor):
            if other is not None:
                other.hang_up()

    def on_dtmf(self, digit: str) -> bool:
        """Keys of the caller: the survey's while it runs; True if taken."""
        if self.survey is not None:
            self.survey.on_dtmf(digit)
            return True
        return False

    def ended(self) -> None:
        """The caller's call is over: the others go too."""
        self.over = True
        if self.survey is not None:
            self.survey.cancel()
        self._drop_consult()
        self._hang_up_others()
        self.controls.forget(self)
