"""One answered call walking the menu: prompts, keys, speech, and the hand-over to a leave action.

Runs on the pjsua2 thread. `MenuRun` decides (no I/O); this class performs its steps: plays
prompt sequences (`Playback`), collects DTMF with the node's timeouts (`DigitCollector` and
timers), asks the speech service for the node's keywords, and hands `Leave` actions to a scene
(`ivr.scenes`). SQL and Redis work goes through `Offload`; results come back on this thread.

The recording notice is never skipped: keys pressed before it ends are kept (type-ahead) and
act as soon as it has played, and the caller leg is recorded only from then on. Later prompts
may be cut short by a key (barge-in), so a caller who knows the menu is not held up.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, Any

from acd.models import Disposition
from ivr import cdr
from ivr.digits import DigitCollector
from ivr.menu import Action, ActionKind
from ivr.menu_run import Collect, Leave, MenuRun, Play, Step
from ivr.playback import Playback
from ivr.queue_wait import QueueWait
from ivr.scenes import Goodbye, Scene, StatusLookup, Transfer, Voicemail

if TYPE_CHECKING:
    from ivr.context import IvrContext
    from ivr.legs import Leg
    from ivr.sip import SipLeg
    from ivr.timers import Timer

log = logging.getLogger(__name__)

# The supervisors' wallboards redraw on a call's arrival, queueing, offer, answer and end (the
# relay sends an event only to the Socket.IO rooms it names; agents get their seat's own events).
WALLBOARD_ROOMS = ("role:supervisor", "role:admin")
WALLBOARD_EVENTS = frozenset({"call.arrived", "call.queued", "call.offered", "call.answered", "call.ended"})

RECORDING_NOTICE = "recording_notice"
GREETING = "greeting"
MAX_TYPEAHEAD = 32
# Entries of MenuRun.path that mean "the caller is now in this node".
_ENTRY_VIAS = {"start", "submenu", "hours"}


class FlowState(enum.StrEnum):
    MENU = "menu"  # playing a node's prompts or waiting for its input
    STATUS = "status"  # keying a ticket number and hearing its status
    VOICEMAIL = "voicemail"
    TRANSFER = "transfer"
    QUEUED = "queued"  # waiting for a person
    TALKING = "talking"  # bridged to an agent's seat
    GOODBYE = "goodbye"
    ENDED = "ended"


# state -> states it may move to; anything else is a bug worth a loud error.
TRANSITIONS: dict[FlowState, frozenset[FlowState]] = {
    FlowState.MENU: frozenset(
        {
            FlowState.MENU,
            FlowState.STATUS,
            FlowState.VOICEMAIL,
            FlowState.TRANSFER,
            FlowState.QUEUED,
            FlowState.GOODBYE,
            FlowState.ENDED,
        }
    ),
    FlowState.STATUS: frozenset({FlowState.MENU, FlowState.ENDED}),
    # A message too short to keep returns to the menu; no way to record one goes to a person.
    FlowState.VOICEMAIL: frozenset({FlowState.MENU, FlowState.QUEUED, FlowState.GOODBYE, FlowState.ENDED}),
    # A transfer that fails goes to a person, never leaves the caller alone.
    FlowState.TRANSFER: frozenset({FlowState.QUEUED, FlowState.GOODBYE, FlowState.ENDED}),
    # Waiting callers may leave a message or ask to be called back (a goodbye), or get that
    # as the fallback when nobody can take the call.
    FlowState.QUEUED: frozenset({FlowState.TALKING, FlowState.VOICEMAIL, FlowState.GOODBYE, FlowState.ENDED}),
    # The agent hung up first: the caller hears the goodbye; or sent the caller to another queue.
    FlowState.TALKING: frozenset({FlowState.GOODBYE, FlowState.QUEUED, FlowState.ENDED}),
    FlowState.GOODBYE: frozenset({FlowState.ENDED}),
    FlowState.ENDED: frozenset(),
}


class FlowError(Exception):
    """A flow was asked to move somewhere its state does not allow."""


class CallFlow:
    def __init__(self, ctx: IvrContext, leg: SipLeg, info: Leg) -> None:
        assert ctx.scheduler is not None
        self.ctx = ctx
        self.leg = leg
        self.info = info
        self.run = MenuRun(ctx.menu)
        self.playback = Playback(leg, ctx.book, ctx.scheduler)
        self.state = FlowState.MENU
        self.opened = cdr.CallOpened(
            call_id=info.call_id,
            caller=info.caller,
            callee=info.called,
            worker=ctx.record_name,
            arrived_at=ctx.now(),
            answered_at=ctx.now(),
        )
        self.scene: Scene | None = None
        self.outcome: Disposition | None = None  # decided before the end (a voicemail saved)
        self.self_served = False
        self.lookups = 0
        self._steps: list[Step] = []
        self._collect: Collect | None = None
        self._collector: DigitCollector | None = None
        self._timer: Timer | None = None
        self._typeahead = ""
        self._notice_done = False
        self._barge = False
        self._speech_id: str | None = None
        self.caller_recording: cdr.RecordingRef | None = None
        self.extra_recordings: list[cdr.RecordingRef] = []  # other legs' (the agent's), sealed at the end
        self._recording_started = False
        self._published = 0  # MenuRun.path entries already announced on the bus

    # Events from the controller -----------------------------------------------------------------
    def opened_call(self) -> None:
        opened = self.opened
        self.ctx.offload.sql(lambda: cdr.open_call(self.ctx.factory, opened))

    def start(self) -> None:
        """Media is up: play the first node (greeting, recording notice, menu)."""
        self._run(self._with_notice(self.run.start()))

    def on_dtmf(self, digit: str, method: str) -> None:
        if self.state is FlowState.ENDED:
            return
        if self.state is not FlowState.MENU:
            if self.scene is not None:
                self.scene.on_dtmf(digit)
            return
        if not self._notice_done:
            self._typeahead = (self._typeahead + digit)[-MAX_TYPEAHEAD:]
        elif self._collector is not None:
            self._feed(digit)
        elif self.playback.playing and self._barge:
            self._barge_in(digit)

    def on_transfer_status(self, status_code: int, reason: str, final: bool) -> None:
        if isinstance(self.scene, Transfer):
            self.scene.on_status(status_code, reason, final)

    def end(self, status_code: int) -> None:
        """The call is over (either side hung up): close its records."""
        if self.state is FlowState.ENDED:
            return
        before = self.state
        self.move(FlowState.ENDED)
        self.playback.stop()
        self._end_collect()
        message = self.scene.on_end() if self.scene is not None else None  # a voicemail being left
        if self.outcome is not None:
            disposition = self.outcome
        elif self.ctx.stopping:
            disposition = Disposition.FAILED
        elif before is FlowState.QUEUED:
            disposition = Disposition.ABANDONED_QUEUE
        elif self.self_served:
            disposition = Disposition.SELF_SERVICE
        else:
            disposition = Disposition.ABANDONED_IVR
        recorded: tuple[cdr.RecordingRef, ...] = ()
        if self.caller_recording is not None and self._recording_started:
            recorded = (self.caller_recording,)
        recorded += tuple(self.extra_recordings)
        closed = cdr.CallClosed(
            opened=self.opened,
            ended_at=self.ctx.now(),
            disposition=disposition,
            ivr_path=list(self.run.path),
            recorded=recorded,
            voicemail=message,
        )
        ctx = self.ctx
        if ctx.transcripts is not None:
            ctx.transcripts.call_ended(self.info.call_id)

        def close() -> None:
            # On the SQL thread: the records first, then what depends on them.
            saved = cdr.close_call(ctx.factory, ctx.recordings_root, closed)
            if saved is not None:
                ctx.events.publish("voicemail.saved", self.voicemail_event(saved))
                ctx.offload.redis(lambda: ctx.queue_transcription(saved.ticket_id))

        ctx.offload.sql(close)

    # Shared with the scenes ----------------------------------------------------------------------
    def move(self, target: FlowState) -> None:
        if target not in TRANSITIONS[self.state]:
            raise FlowError(f"call {self.info.call_id}: {self.state.value} -> {target.value} not allowed")
        log.debug("call %s: %s -> %s", self.info.call_id, self.state.value, target.value)
        self.state = target

    @property
    def ended(self) -> bool:
        return self.state is FlowState.ENDED

    def publish(self, type_: str, **data: Any) -> None:
        self.ctx.events.publish(
            type_,
            {"call_id": self.info.call_id, "worker": self.ctx.worker, "node": self.run.node.id, **data},
            WALLBOARD_ROOMS if type_ in WALLBOARD_EVENTS else (),
        )

    def note(self, **entry: Any) -> None:
        """Add to the CDR's IVR path what happened outside the menu (queue, lookup, transfer...)."""
        self.run.path.append({"node": self.run.node.id, **entry})

    def later(self, delay_s: float, job: Any) -> Timer:
        assert self.ctx.scheduler is not None
        return self.ctx.scheduler.call_later(delay_s, job)

    def resume(self) -> None:
        """Back to the current node's prompts after a step that returns (status read-out...)."""
        if self.ended:
            return
        self.scene = None
        self.move(FlowState.MENU)
        self._run(self.run.resume())

    def leave(self, action: Action) -> None:
        """Start a leave action's scene (also used by scenes that fall back to a person)."""
        scene: Scene
        match action.kind:
            case ActionKind.QUEUE:
                scene = QueueWait(self, action.queue)
            case ActionKind.VOICEMAIL:
                scene = Voicemail(self)
            case ActionKind.TICKET_STATUS:
                scene = StatusLookup(self)
            case ActionKind.TRANSFER:
                scene = Transfer(self, action.number)
            case _:
                scene = Goodbye(self, action.prompt or "goodbye")
        self.scene = scene
        scene.start()

    def voicemail_event(self, saved: cdr.VoicemailSaved) -> dict[str, Any]:
        return {
            "call_id": self.info.call_id,
            "worker": self.ctx.worker,
            "caller": self.info.caller,
            "ticket_id": saved.ticket_id,
            "ticket_number": saved.number,
            "seconds": saved.seconds,
        }

    # Steps ---------------------------------------------------------------------------------------
    def _with_notice(self, steps: list[Step]) -> list[Step]:
        """The recording notice plays before recording starts, even if a menu forgot it."""
        for i, step in enumerate(steps):
            if isinstance(step, Play):
                if RECORDING_NOTICE in step.prompts:
                    return steps
                prompts = list(step.prompts)
                prompts.insert(1 if prompts[:1] == [GREETING] else 0, RECORDING_NOTICE)
                return [*steps[:i], Play(tuple(prompts)), *steps[i + 1 :]]
        return [Play((RECORDING_NOTICE,)), *steps]

    def _run(self, steps: list[Step]) -> None:
        self._announce_path()
        self._steps = list(steps)
        self._advance()

    def _advance(self) -> None:
        if self.ended or not self._steps:
            return
        step = self._steps.pop(0)
        if isinstance(step, Play):
            self._play(step.prompts)
        elif isinstance(step, Collect):
            self._start_collect(step)
        elif isinstance(step, Leave):
            self.leave(step.action)

    def _play(self, prompts: tuple[str, ...]) -> None:
        if not self._notice_done and RECORDING_NOTICE in prompts:
            cut = prompts.index(RECORDING_NOTICE) + 1
            self._barge = False
            self.playback.play(prompts[:cut], on_done=lambda: self._notice_played(prompts[cut:]))
            return
        self._barge = self._notice_done
        self.playback.play(prompts, on_done=self._advance)

    def _notice_played(self, rest: tuple[str, ...]) -> None:
        self._notice_done = True
        self._start_recording()
        if self._typeahead:
            keys, self._typeahead = self._typeahead, ""
            self._barge_in(keys)
        elif rest:
            self._barge = True
            self.playback.play(rest, on_done=self._advance)
        else:
            self._advance()

    def _barge_in(self, keys: str) -> None:
        """Keys during a prompt: stop it and treat them as input to the next collect step."""
        while self._steps and not isinstance(self._steps[0], Collect):
            if isinstance(self._steps[0], Leave):
                return  # the prompt leads straight on: keys mean nothing here
            self._steps.pop(0)
        if not self._steps:
            return
        self.playback.stop()
        self._advance()
        self._feed(keys[0])
        for key in keys[1:]:
            # What the first keys started (a submenu, a ticket-number entry) takes the rest.
            self.on_dtmf(key, "typeahead")

    # Collecting input ----------------------------------------------------------------------------
    def _start_collect(self, step: Collect) -> None:
        self._collect = step
        self._collector = DigitCollector(step.max_digits, self.run.node.options.keys())
        self._arm(step.timeout_s, self._no_input)
        listening = self._listen(step)
        self.publish("menu.listening", speech=listening)

    def _listen(self, step: Collect) -> bool:
        speech, recording = self.ctx.speech, self.caller_recording
        if speech is None or not step.keywords or recording is None or not self._recording_started:
            return False
        request: list[str] = []

        def heard(word: str | None, text: str) -> None:
            if request and request[0] == self._speech_id:
                self._on_speech(word, text)

        self._speech_id = speech.spot(recording.path, step.keywords, step.timeout_s, heard)
        request.append(self._speech_id)
        return True

    def _arm(self, seconds: float, job: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.later(seconds, job)

    def _feed(self, key: str) -> None:
        assert self._collector is not None and self._collect is not None
        if not self._collector.started:
            self._stop_listening()  # the caller chose keys
        entry = self._collector.feed(key)
        if entry is None:
            self._arm(self._collect.interdigit_s, self._interdigit_timeout)
        else:
            self._entry(entry)

    def _interdigit_timeout(self) -> None:
        if self._collector is not None:
            self._entry(self._collector.flush())

    def _entry(self, digits: str) -> None:
        self._end_collect()
        self.publish("dtmf", digits=digits)
        self._run(self.run.on_digits(digits))

    def _no_input(self) -> None:
        self._end_collect()
        self._run(self.run.on_no_input())

    def _on_speech(self, word: str | None, heard: str) -> None:
        self._speech_id = None
        if self.ended or self._collector is None or self._collector.started or not word:
            return  # nothing useful heard: keys and the no-input timeout still decide
        self._end_collect()
        self.publish("speech", word=word, heard=heard)
        self._run(self.run.on_speech(word))

    def _stop_listening(self) -> None:
        if self._speech_id is not None and self.ctx.speech is not None:
            self.ctx.speech.cancel(self._speech_id)
        self._speech_id = None

    def _end_collect(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._stop_listening()
        self._collect = self._collector = None

    def _announce_path(self) -> None:
        for entry in self.run.path[self._published :]:
            if entry.get("via") in _ENTRY_VIAS:
                self.publish("menu.entered", via=entry["via"])
        self._published = len(self.run.path)

    # Recording the caller ------------------------------------------------------------------------
    def _start_recording(self) -> None:
        ctx, call_id = self.ctx, self.info.call_id
        self.ctx.offload.sql(
            lambda: cdr.register_recording(ctx.factory, ctx.recordings_root, call_id, cdr.CALLER_LEG),
            on_done=self._recording_registered,
        )

    def _recording_registered(self, ref: cdr.RecordingRef) -> None:
        if self.ended or not self.leg.start_recording(ref.path):
            # The caller is gone already (or the recorder failed): no file, so no row either.
            self.ctx.offload.sql(lambda: cdr.drop_recordings(self.ctx.factory, (ref,)))
            return
        self.caller_recording = ref
        self._recording_started = True
        if self.ctx.transcripts is not None:
            self.ctx.transcripts.leg_started(
                self.info.call_id, cdr.CALLER_LEG, ref.path, origin=self.opened.answered_at
            )
