"""The legs a bridged call grows (a third party, a supervisor's phone) and the after-call survey;
parts of `ivr.talk.Talk`, on the pjsua2 thread."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from acd.controls import Command, result_rooms
from ivr import cdr
from ivr.dialer import TRUNK_HEADER
from ivr.key_question import KeyQuestion
from ivr.legs import Leg, LegEvent, LegKind, TransitionError
from ivr.sip import SipError

if TYPE_CHECKING:
    from ivr.sip import SipLeg
    from ivr.talk import Talk
    from ivr.timers import Timer

log = logging.getLogger(__name__)

SURVEY_WAIT_S = 8.0
SURVEY_RETRIES = 1
SURVEY_KEYS = {"1": 1, "2": 2, "3": 3}  # 满意 / 基本满意 / 不满意, as the revisit keys
PARTY_LEG = "party"  # the recording of a third party (a department hotline, 110...)


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
        assert talk.ctx.scheduler is not None
        self.question = KeyQuestion(
            talk.owner.playback,
            talk.ctx.scheduler,
            "survey_ask",
            SURVEY_KEYS,
            SURVEY_WAIT_S,
            SURVEY_RETRIES,
            on_key=self._rated,
            on_give_up=lambda: self._end(["goodbye"], "no_input"),
        )

    def start(self) -> None:
        self.talk.side.note(survey="asked")
        self.question.ask()

    def on_dtmf(self, digit: str) -> None:
        self.question.on_dtmf(digit)

    def _rated(self, digit: str) -> None:
        score = SURVEY_KEYS[digit]
        ctx, call_id = self.talk.ctx, self.talk.call_id
        ctx.offload.sql(lambda: cdr.store_survey(ctx.factory, call_id, score))
        ctx.events.publish(
            "call.survey", {"call_id": call_id, "score": score, "seat": self.talk.seat.extension}, ()
        )
        self._end(["survey_thanks", "goodbye"], "rated", score=score)

    def _end(self, prompts: list[str], how: str, **extra: Any) -> None:
        self.talk.side.note(survey=how, **extra)
        self.talk.owner.playback.play(prompts, on_done=self._hang_up)

    def _hang_up(self) -> None:
        self.talk.side.leg.hangup()

    def cancel(self) -> None:
        self.question.close()
