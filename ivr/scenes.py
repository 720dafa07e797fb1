"""What happens after the menu: a voicemail, a ticket-status look-up, a transfer, a goodbye (waiting
for a person is `ivr.queue_wait`). One small class per leave action, driven by its call flow on
the pjsua2 thread.

None of them hangs up on a caller who is still listening: only `Goodbye` (and a voicemail's
read-back, which ends with the goodbye) ends a call, and every failure leads to a person.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from acd.models import Disposition
from ivr import cdr
from ivr.digits import DigitCollector
from ivr.menu import DEFAULT_QUEUE, Action, ActionKind
from ivr.playback import spoken_digits

if TYPE_CHECKING:
    from ivr.flow import CallFlow
    from ivr.timers import Timer

log = logging.getLogger(__name__)

VOICEMAIL_MAX_S = 120.0  # the longest message; the caller hears the goodbye after it
STATUS_MAX_DIGITS = 16
STATUS_TIMEOUT_S = 10.0
STATUS_INTERDIGIT_S = 5.0
MAX_LOOKUPS = 3  # per call: keying numbers at random is not a way to learn other people's tickets
TRANSFER_WAIT_S = 15.0  # for the transfer target's call to be answered (NOTIFY with the outcome)


class Scene(Protocol):
    def start(self) -> None: ...

    def on_dtmf(self, digit: str) -> None: ...

    def on_end(self) -> cdr.RecordingRef | None:
        """The caller hung up: stop, and hand over a voicemail recording to keep (if any)."""


class Voicemail:
    """留言: intro and beep, then the caller's message until #, hang-up or the time limit."""

    def __init__(self, flow: CallFlow) -> None:
        self.flow = flow
        self.phase = "intro"  # intro -> recording -> saving -> done
        self.ref: cdr.RecordingRef | None = None
        self._intro_done = False
        self._timer: Timer | None = None

    def start(self) -> None:
        from ivr.flow import FlowState

        flow, ctx, call_id = self.flow, self.flow.ctx, self.flow.info.call_id
        flow.move(FlowState.VOICEMAIL)
        ctx.offload.sql(
            lambda: cdr.register_recording(ctx.factory, ctx.recordings_root, call_id, cdr.VOICEMAIL_LEG),
            on_done=self._registered,
            on_error=lambda _exc: self._unavailable(),
        )
        flow.playback.play(["voicemail_intro", "beep"], on_done=self._intro_played)

    def _registered(self, ref: cdr.RecordingRef) -> None:
        if self.flow.ended:
            self.flow.ctx.offload.sql(lambda: cdr.drop_recordings(self.flow.ctx.factory, (ref,)))
            return
        self.ref = ref
        self._record()

    def _intro_played(self) -> None:
        self._intro_done = True
        self._record()

    def _record(self) -> None:
        if self.phase != "intro" or not self._intro_done or self.ref is None:
            return
        if not self.flow.leg.start_recording(self.ref.path):
            ref = self.ref
            self.flow.ctx.offload.sql(lambda: cdr.drop_recordings(self.flow.ctx.factory, (ref,)))
            self._unavailable()
            return
        self.phase = "recording"
        self.flow.note(voicemail="recording")
        self.flow.publish("voicemail.recording", limit_s=VOICEMAIL_MAX_S)
        self._timer = self.flow.later(VOICEMAIL_MAX_S, self._finish)

    def _unavailable(self) -> None:
        # No record can be kept (database down): a person takes the message instead.
        if self.phase == "intro" and not self.flow.ended:
            self.phase = "done"
            self.flow.note(voicemail="unavailable")
            self.flow.leave(Action(ActionKind.QUEUE, queue=DEFAULT_QUEUE))

    def on_dtmf(self, digit: str) -> None:
        if digit == "#" and self.phase == "recording":
            self._finish()

    def _finish(self) -> None:
        if self.phase != "recording" or self.ref is None:
            return
        self.phase = "saving"
        if self._timer is not None:
            self._timer.cancel()
        self.flow.leg.stop_recording(self.ref.path)
        flow, ctx, ref = self.flow, self.flow.ctx, self.ref
        caller = flow.info.caller
        ctx.offload.sql(
            lambda: cdr.save_voicemail(ctx.factory, ctx.recordings_root, ref, flow.info.call_id, caller),
            on_done=self._saved,
        )

    def _saved(self, saved: cdr.VoicemailSaved | None) -> None:
        flow, ctx = self.flow, self.flow.ctx
        self.phase = "done"
        if saved is None:
            flow.note(voicemail="empty")
            if not flow.ended:
                flow.playback.play(["voicemail_empty"], on_done=flow.resume)
            return
        flow.note(voicemail="saved", ticket=saved.number)
        ctx.events.publish("voicemail.saved", flow.voicemail_event(saved))
        ctx.offload.redis(lambda: ctx.queue_transcription(saved.ticket_id))
        flow.outcome = Disposition.VOICEMAIL
        if not flow.ended:
            flow.leave(Action(ActionKind.HANGUP, prompt=""))
            assert isinstance(flow.scene, Goodbye)
            flow.scene.say(["voicemail_saved", *spoken_digits(saved.number), "goodbye"])

    def on_end(self) -> cdr.RecordingRef | None:
        if self._timer is not None:
            self._timer.cancel()
        if self.phase == "recording":
            return self.ref  # hanging up is how most callers end a message: keep it
        if self.phase == "intro" and self.ref is not None:
            ref = self.ref
            self.flow.ctx.offload.sql(lambda: cdr.drop_recordings(self.flow.ctx.factory, (ref,)))
        return None


class StatusLookup:
    """查询: the caller keys a ticket number and hears its status (if the ticket is theirs)."""

    def __init__(self, flow: CallFlow) -> None:
        self.flow = flow
        self.phase = "prompt"  # prompt -> keying -> answer (lookup and read-out: keys ignored)
        self.collector: DigitCollector | None = None
        self._timer: Timer | None = None

    def start(self) -> None:
        from ivr.flow import FlowState

        self.flow.move(FlowState.STATUS)
        if self.flow.lookups >= MAX_LOOKUPS:
            self.phase = "answer"
            self.flow.note(action="ticket_status", result="limit")
            self.flow.playback.play(["status_not_found"], on_done=self.flow.resume)
            return
        self.flow.playback.play(["status_enter_number"], on_done=self._collect)

    def _collect(self) -> None:
        if self.phase == "prompt":
            self.phase = "keying"
            self.collector = DigitCollector(STATUS_MAX_DIGITS)
            self._arm(STATUS_TIMEOUT_S)

    def _arm(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.flow.later(seconds, self._timeout)

    def on_dtmf(self, digit: str) -> None:
        if self.phase == "prompt":
            self.flow.playback.stop()  # keys during the prompt: the caller knows what to do
            self._collect()
        if self.phase != "keying" or self.collector is None:
            return  # a late or repeated key while the answer is looked up or read out
        entry = self.collector.feed(digit)
        if entry is None:
            self._arm(STATUS_INTERDIGIT_S)
        else:
            self._lookup(entry)

    def _timeout(self) -> None:
        self._lookup(self.collector.flush() if self.collector is not None else "")

    def _lookup(self, digits: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.collector = None
        self.phase = "answer"
        flow = self.flow
        if not digits.strip("#"):
            flow.note(action="ticket_status", result="no_input")
            flow.resume()
            return
        flow.lookups += 1
        log.info("call %s: looking up a ticket (%d digits)", flow.info.call_id, len(digits))
        ctx, caller = flow.ctx, flow.info.caller
        ctx.offload.sql(
            lambda: cdr.lookup_status(ctx.factory, digits, caller),
            on_done=self._answer,
            on_error=lambda _exc: self._answer(None),
        )

    def _answer(self, answer: cdr.StatusAnswer | None) -> None:
        flow = self.flow
        if flow.ended:
            return
        flow.note(action="ticket_status", found=answer is not None)
        flow.publish(
            "ivr.ticket_status", found=answer is not None, status=answer.status.value if answer else ""
        )
        if answer is None:
            flow.playback.play(["status_not_found"], on_done=flow.resume)
            return
        flow.self_served = True
        prompts = ["status_intro", *spoken_digits(answer.number), f"status_{answer.status.value}"]
        flow.playback.play(prompts, on_done=flow.resume)

    def on_end(self) -> cdr.RecordingRef | None:
        if self._timer is not None:
            self._timer.cancel()
        return None


class Transfer:
    """A blind transfer (REFER) to an outside number through the SIP edge; a failure goes to a person."""

    def __init__(self, flow: CallFlow, number: str) -> None:
        self.flow = flow
        self.number = number
        self.done = False
        self._timer: Timer | None = None

    def start(self) -> None:
        from ivr.flow import FlowState

        self.flow.move(FlowState.TRANSFER)
        self.flow.playback.play(["transfer_notice"], on_done=self._refer)

    def _refer(self) -> None:
        edge = self.flow.ctx.edge_address
        hotline = self.flow.info.called or "12345"
        uri = f"sip:{self.number}@{edge}"
        self.flow.note(transfer=self.number)
        # Referred-By tells the edge that this INVITE is a transfer, not a new call to the IVR.
        if not self.flow.leg.transfer(uri, referred_by=f"<sip:{hotline}@{edge}>"):
            self._failed("refer_failed")
            return
        self._timer = self.flow.later(TRANSFER_WAIT_S, lambda: self._failed("timeout"))

    def on_status(self, status_code: int, reason: str, final: bool) -> None:
        if self.done or not final:
            return
        if 200 <= status_code < 300:
            self.done = True
            if self._timer is not None:
                self._timer.cancel()
            self.flow.note(transfer=self.number, result="transferred")
            self.flow.publish("call.transferred", number=self.number)
            self.flow.self_served = True
            self.flow.leg.hangup()  # the caller is talking to the target now
        else:
            self._failed(f"{status_code} {reason}".strip())

    def _failed(self, why: str) -> None:
        if self.done or self.flow.ended:
            return
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
        log.info("call %s: transfer to %s failed: %s", self.flow.info.call_id, self.number, why)
        self.flow.note(transfer=self.number, result="failed", why=why)
        self.flow.playback.play(
            ["transfer_failed"],
            on_done=lambda: self.flow.leave(Action(ActionKind.QUEUE, queue=DEFAULT_QUEUE)),
        )

    def on_dtmf(self, digit: str) -> None:
        pass

    def on_end(self) -> cdr.RecordingRef | None:
        if self._timer is not None:
            self._timer.cancel()
        return None


class Goodbye:
    """The only way the hotline ends a call itself: after a clear goodbye."""

    def __init__(self, flow: CallFlow, prompt: str) -> None:
        self.flow = flow
        self.prompt = prompt

    def start(self) -> None:
        from ivr.flow import FlowState

        self.flow.move(FlowState.GOODBYE)
        self.flow.self_served = True
        if self.prompt:
            self.say([self.prompt])

    def say(self, prompts: list[str]) -> None:
        self.flow.note(action="goodbye")
        self.flow.playback.play(prompts, on_done=self._hang_up)

    def _hang_up(self) -> None:
        self.flow.leg.hangup()

    def on_dtmf(self, digit: str) -> None:
        pass

    def on_end(self) -> cdr.RecordingRef | None:
        return None
