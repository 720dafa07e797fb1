"""One caller bridged to a seat in a worker, and what the agent's and supervisor's commands do to
it: hold, the agent leaving (hang-up, survey, transfers), a third party, a consulted colleague
(`ivr.talk_consult`), a supervisor listening. Built and driven by `ivr.call_control.CallControls`
on the pjsua2 thread; the media behaviour of each action is described there.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

from acd.controls import Action, Command, result_rooms
from acd.seat_states import SeatEvent, SeatState
from ivr.seat_call import SeatCall, SeatCallState, SeatOwner
from ivr.talk_consult import Consultation
from ivr.talk_legs import PARTY_LEG, OtherLeg, Survey

if TYPE_CHECKING:
    from ivr.call_control import CallControls
    from ivr.playback import Playback
    from ivr.seat_call import CallerSide

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


class Talk(Consultation):
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
