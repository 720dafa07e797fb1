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
    cancelled      (to consult) the agent cancelled before the colleague answered
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
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import redis

from acd.controls import RESULT_EVENT, Command, channel, result_rooms
from hotline import bus
from ivr.talk import Talk, TalkOwner

if TYPE_CHECKING:
    from ivr.context import IvrContext
    from ivr.legs import LegTable
    from ivr.seat_call import CallerSide, SeatCall
    from ivr.sip import SipEdge

log = logging.getLogger(__name__)


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
