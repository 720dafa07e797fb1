"""Call controls in the worker that holds the call: hold, hang-up, survey, transfers, supervision.

The desk sends `acd.controls.Command`s on this worker's channel (acd/controls.py). The
`ControlListener` thread receives them and posts each to the pjsua2 thread, where `CallControls`
finds the bridged call (`Talk`, made when a caller and a seat are connected) and carries the
command out. Every command ends in one `call.control` event (`id`, `call_id`, `action`, `ok`,
and `error` when not ok) for the sender and the supervisors:

    no_call        the call is not bridged in this worker (over, or still waiting)
    not_your_call  the command names a seat that is not the one on the call
    not_allowed    the seat's state does not allow it (hold while held, a second supervisor...)
    seat_busy      the colleague a call is transferred to is not ready (or its phone is off)
    no_room        no free leg in this worker for another party (see `LegTable.can_add_party`)
    bad_target     an emergency number that is not configured, a number that is not a number
    failed         the other party could not be reached (busy, no answer, no trunk)

What each action does to the media (the conference bridge of this worker):
- hold: the store agrees (`seat_event(HOLD)`), then caller and agent stop hearing each other and
  the caller hears `hold_notice` and hold music in a loop; resume undoes it (`UNHOLD`).
- hang_up: the agent's leg ends; the caller hears the goodbye (as when the agent hangs up).
- survey: the agent's leg ends (the seat wraps up) and the caller hears `survey_ask`; 1/2/3 is
  stored on the CDR (`calls.survey_score`), then `survey_thanks` and the goodbye.
- transfer_queue: the agent's leg ends and the caller waits in the target queue with its first
  queue entry time, so it goes ahead of callers who came later.
- transfer_seat: the colleague's seat must be ready; then the agent's leg ends and the caller is
  queued again and offered to that seat first (`AcdStore.offer_to`).
- consult / complete_transfer / cancel_consult (attended transfer): the colleague's seat is
  reserved (`AcdStore.reserve`: ready → offered for this call), the caller goes on hold, and a
  second `SeatCall` rings the colleague without joining the caller (`bridge_caller=False`); agent
  and colleague talk. Completing (or the agent hanging up once the colleague is on) joins the
  caller to the colleague, whose `SeatCall` becomes the call's seat (`AcdStore.hand_over`), and
  the agent wraps up. Cancelling, or the colleague not answering or hanging up, brings the caller
  back to the agent.
- transfer_number / emergency: the number is called through the trunk (a `sip:` URI directly)
  and, once it answers, joined to both (三方通话); its leg is recorded as `party`. drop_agent
  then leaves the caller with the department; when that party hangs up, the caller hears the
  goodbye.
- listen / whisper / barge: the supervisor's phone (`sip:<extension>@edge`) is called; it hears
  caller, agent and any party; whisper adds the supervisor to what the agent hears, barge to what
  everyone hears; another of the three changes the mode, stop_listening ends it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import redis

from acd.controls import RESULT_EVENT, Action, Command, channel, result_rooms
from acd.seat_states import SeatEvent, SeatState
from hotline import bus
from ivr import cdr
from ivr.legs import Leg, LegEvent, LegKind, TransitionError
from ivr.seat_call import SeatCall, SeatCallState, SeatOwner
from ivr.sip import SipError

if TYPE_CHECKING:
    from ivr.context import IvrContext
    from ivr.legs import LegTable
    from ivr.playback import Playback
    from ivr.seat_call import CallerSide
    from ivr.sip import SipEdge, SipLeg
    from ivr.timers import Timer

log = logging.getLogger(__name__)

TRUNK_HEADER = "X-Hotline-Trunk"  # as ivr/templates/kamailio.cfg.j2 expects it (see ivr.dialer)
PARTY_RING_S = 30.0  # a department or emergency line that does not answer in this time: failed
SUPERVISOR_RING_S = 20.0
SURVEY_WAIT_S = 8.0
SURVEY_RETRIES = 1
SURVEY_KEYS = {"1": 1, "2": 2, "3": 3}  # 满意 / 基本满意 / 不满意, as the revisit keys
PARTY_LEG = "party"  # the recording of a third party (a department hotline, 110...)
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


class CallControls:
    """This worker's bridged calls, by call id, and the commands for them (pjsua2 thread)."""

    def __init__(
        self, ctx: IvrContext, edge: SipEdge, legs: LegTable, emergency_numbers: Sequence[str]
    ) -> None:
        self.ctx = ctx
        self.edge = edge
        self.legs = legs
        self.emergency_numbers = tuple(emergency_numbers)
        self.talks: dict[str, Talk] = {}

    def bridged(self, owner: TalkOwner, side: CallerSide, seat: SeatCall) -> Talk:
        talk = Talk(self, owner, side, seat)
        self.talks[talk.call_id] = talk
        return talk

    def forget(self, talk: Talk) -> None:
        if self.talks.get(talk.call_id) is talk:
            del self.talks[talk.call_id]

    def handle(self, command: Command) -> None:
        talk = self.talks.get(command.call_id)
        if talk is None or talk.over:
            self.reply(command, "no_call")
            return
        if command.seat and (talk.agent_gone or command.seat != talk.seat.extension):
            self.reply(command, "not_your_call")
            return
        log.info("call %s: %s by user %s", command.call_id, command.action.value, command.by_user)
        talk.side.note(control=command.action.value, target=command.target, by=command.by_user)
        try:
            talk.carry_out(command)
        except Exception:
            log.exception("call %s: %s failed", command.call_id, command.action.value)
            self.reply(command, "failed")

    def reply(self, command: Command, error: str = "", **extra: Any) -> None:
        data = {
            "id": command.id,
            "call_id": command.call_id,
            "action": command.action.value,
            "target": command.target,
            "ok": not error,
            **({"error": error} if error else {}),
            **extra,
        }
        self.ctx.events.publish(RESULT_EVENT, data, result_rooms(command.by_user))


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

    def _reserved(self, command: Command, extension: str) -> None:
        ctx, call_id, link = self.ctx, self.call_id, self.ctx.seat_link
        if self.over or self.agent_gone or self.consult is not None or link is None:
            ctx.offload.redis(lambda: ctx.acd().seat_event(extension, SeatEvent.CANCEL, call_id=call_id))
            self.controls.reply(command, "no_call")
            return
        seat = SeatCall(self, self.side, link, extension, bridge_caller=False)
        if not seat.start():
            ctx.offload.redis(lambda: ctx.acd().seat_event(extension, SeatEvent.CANCEL, call_id=call_id))
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
        if self._consulting is not None:
            self.controls.reply(self._consulting)

    def seat_failed(self, seat: SeatCall) -> None:
        if seat is not self.consult:
            return
        self.consult = None
        if self._consulting is not None:
            self.controls.reply(self._consulting, "failed")
        self._back_to_agent()

    def seat_left(self, seat: SeatCall) -> None:
        if seat is self.consult:  # the colleague hung up before the transfer was completed
            self.consult = None
            self._back_to_agent()

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
        if seat.state is SeatCallState.TALKING:
            seat.hang_up()
        else:
            seat.withdraw()
            ctx, ext, call_id = self.ctx, seat.extension, self.call_id
            ctx.offload.redis(lambda: ctx.acd().seat_event(ext, SeatEvent.CANCEL, call_id=call_id))
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


class OtherLeg:
    """A leg the worker places for a bridged call: a third party, or a supervisor's phone."""

    def __init__(self, talk: Talk, command: Command, role: str, target: str, ring_s: float) -> None:
        self.talk = talk
        self.command = command
        self.role = role
        self.target = target
        self.ring_s = ring_s
        self.info = Leg(sip_call_id="", caller="", caller_uri="", called=target, kind=LegKind.SEAT)
        self.leg: SipLeg | None = None
        self.answered = False
        self.media = False
        self.recording: cdr.RecordingRef | None = None
        self._timer: Timer | None = None

    @classmethod
    def dial(cls, talk: Talk, command: Command, role: str, target: str, ring_s: float) -> OtherLeg | None:
        other = cls(talk, command, role, target, ring_s)
        error = other.start()
        if error:
            talk.controls.reply(command, error)
            return None
        return other

    @property
    def connected(self) -> bool:
        return self.answered and self.media and self.leg is not None

    def uri(self) -> tuple[str, dict[str, str]]:
        edge = self.talk.ctx.edge_address
        if self.target.startswith(("sip:", "sips:")):
            return self.target, {}
        if self.role == "supervisor":
            return f"sip:{self.target}@{edge}", {}  # a seat phone registered to Kamailio
        return f"sip:{self.target}@{edge}", {TRUNK_HEADER: "1"}  # out through the trunk

    def start(self) -> str:
        controls = self.talk.controls
        if not controls.legs.can_add_party():
            return "no_room"
        try:
            controls.legs.add(self.info)
        except TransitionError:
            return "no_room"
        uri, headers = self.uri()
        caller = self.talk.side.info.caller or "anonymous"
        try:
            self.leg = controls.edge.dial(
                uri, self, from_uri=f"sip:{caller}@{self.talk.ctx.edge_address}", headers=headers
            )
        except SipError as exc:
            log.warning("call %s: cannot call %s %s: %s", self.talk.call_id, self.role, self.target, exc)
            controls.legs.remove(self.info.call_id)
            return "failed"
        self.info.sip_call_id = self.leg.sip_call_id
        self._timer = self.talk.side.later(self.ring_s, self._no_answer)
        return ""

    def hang_up(self) -> None:
        if self.leg is not None:
            self.leg.hangup()

    def _no_answer(self) -> None:
        self._timer = None
        if not self.answered:
            self.hang_up()

    # DialListener ------------------------------------------------------------------------------
    def on_answered(self, leg: SipLeg) -> None:
        self.answered = True
        self.info.apply(LegEvent.ANSWER)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._ready()

    def on_media_ready(self, leg: SipLeg) -> None:
        self.media = True
        self._ready()

    def _ready(self) -> None:
        if not self.connected:
            return
        talk = self.talk
        if talk.over:
            self.hang_up()
            return
        talk.other_connected(self)
        talk.controls.reply(self.command, mode=talk.mode.value if self.role == "supervisor" else None)
        talk.ctx.events.publish(
            f"call.{self.role}_joined",
            {"call_id": talk.call_id, "target": self.target, "worker": talk.ctx.worker},
            result_rooms(self.command.by_user),
        )
        if self.role == PARTY_LEG:
            self._record()

    def _record(self) -> None:
        ctx, call_id = self.talk.ctx, self.talk.call_id
        leg = cdr.next_leg(PARTY_LEG, self.talk.side.extra_recordings)
        ctx.offload.sql(
            lambda: cdr.register_recording(ctx.factory, ctx.recordings_root, call_id, leg),
            on_done=self._recording,
        )

    def _recording(self, ref: cdr.RecordingRef) -> None:
        if self.connected and self.leg is not None and self.leg.start_recording(ref.path):
            self.recording = ref
            self.talk.side.extra_recordings.append(ref)  # sealed with the caller's at the end
            return
        ctx = self.talk.ctx
        ctx.offload.sql(lambda: cdr.drop_recordings(ctx.factory, (ref,)))

    def on_dtmf(self, leg: SipLeg, digit: str, method: str) -> None:
        pass

    def on_transfer_status(self, leg: SipLeg, status_code: int, reason: str, final: bool) -> None:
        pass

    def on_disconnected(self, leg: SipLeg, status_code: int, reason: str) -> None:
        talk = self.talk
        talk.controls.legs.remove(self.info.call_id)
        self.info.apply(LegEvent.HANG_UP)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        was_connected, self.answered = self.answered, False
        talk.side.note(**{self.role: self.target, "result": "ended" if was_connected else "failed",
                          "sip_status": status_code})  # fmt: skip
        if not was_connected:
            talk.controls.reply(self.command, "failed", sip_status=status_code)
        talk.other_gone(self)


class Survey:
    """After the agent left: 满意请按1, 基本满意请按2, 不满意请按3; the key on the CDR."""

    def __init__(self, talk: Talk) -> None:
        self.talk = talk
        self.tries = 0
        self.done = False
        self._timer: Timer | None = None

    def start(self) -> None:
        self.talk.side.note(survey="asked")
        self._ask([])

    def _ask(self, before: list[str]) -> None:
        self.talk.owner.playback.play([*before, "survey_ask"], on_done=self._wait)

    def _wait(self) -> None:
        self.cancel()
        self._timer = self.talk.side.later(SURVEY_WAIT_S, self._no_key)

    def _no_key(self) -> None:
        self._timer = None
        if self.done:
            return
        self.tries += 1
        if self.tries > SURVEY_RETRIES:
            self._end(["goodbye"], "no_input")
        else:
            self._ask([])

    def on_dtmf(self, digit: str) -> None:
        if self.done:
            return
        score = SURVEY_KEYS.get(digit)
        if score is None:
            self.tries += 1
            if self.tries > SURVEY_RETRIES:
                self._end(["goodbye"], "no_input")
            else:
                self.cancel()
                self._ask(["invalid_input"])
            return
        ctx, call_id = self.talk.ctx, self.talk.call_id
        ctx.offload.sql(lambda: cdr.store_survey(ctx.factory, call_id, score))
        ctx.events.publish(
            "call.survey", {"call_id": call_id, "score": score, "seat": self.talk.seat.extension}, ()
        )
        self._end(["survey_thanks", "goodbye"], "rated", score=score)

    def _end(self, prompts: list[str], how: str, **extra: Any) -> None:
        self.cancel()
        self.done = True
        self.talk.side.note(survey=how, **extra)
        self.talk.owner.playback.play(prompts, on_done=self._hang_up)

    def _hang_up(self) -> None:
        self.talk.side.leg.hangup()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ControlListener:
    """A thread on this worker's control channel, handing each command to the pjsua2 thread.

    It also follows the `wakes` channels (e.g. `ivr.outbound.WAKE`), whose messages only mean
    "look now": their handlers are posted to the pjsua2 thread too. One connection, blocking in
    the kernel between messages: an idle worker costs nothing here.
    """

    def __init__(
        self,
        worker: str,
        redis_url: str,
        post: Callable[[Callable[[], None]], None],
        handle: Callable[[Command], None],
        wakes: dict[str, Callable[[], None]] | None = None,
    ) -> None:
        self.channel = channel(worker)
        self.redis_url = redis_url
        self.post = post
        self.handle = handle
        self.wakes = dict(wakes or {})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{worker}-controls", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                client = bus.connect(self.redis_url, timeout_s=5.0)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel, *self.wakes)
                for wake in self.wakes.values():
                    self.post(wake)  # whatever was announced while we were not listening
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    waker = self.wakes.get(str(message.get("channel")))
                    if waker is not None:
                        self.post(waker)
                    else:
                        self._receive(message.get("data"))
            except redis.RedisError as exc:
                log.warning("%s: control channel lost (%s); subscribing again", self.channel, exc)
                self._stop.wait(1.0)

    def _receive(self, raw: Any) -> None:
        try:
            command = Command.decode(raw)
        except ValueError as exc:
            log.warning("%s: %s", self.channel, exc)
            return
        self.post(lambda: self.handle(command))
