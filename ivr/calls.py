"""What a worker does with each call: admit or refuse it, answer, greet, and report it on the bus.

This is the foundation behaviour: answer, play the greeting once if there is one, then keep the
line open (RTP silence) until the caller hangs up. The IVR menu engine takes over from
`on_media_ready` later. Runs on the pjsua2 thread: it must not block, so bus events go through
the `EventSink` (a queue drained by another thread).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ivr.legs import Leg, LegEvent, LegTable

if TYPE_CHECKING:
    from ivr.sip import SipLeg

log = logging.getLogger(__name__)

CALL_ARRIVED = "call.arrived"
CALL_ENDED = "call.ended"


class EventSink(Protocol):
    def publish(self, type_: str, data: dict[str, Any]) -> None: ...


class CallController:
    """Implements `ivr.sip.LegListener` for one worker."""

    def __init__(self, worker: str, legs: LegTable, events: EventSink, greeting: Path | None) -> None:
        self.worker = worker
        self.legs = legs
        self.events = events
        self.greeting = greeting
        self._by_sip_leg: dict[str, Leg] = {}

    def on_incoming(self, sip_leg: SipLeg) -> None:
        if not self.legs.can_accept_caller():
            # Kamailio fails over to the next worker on 486; a direct caller hears busy.
            log.info(
                "busy (%d/%d legs): refusing %s", len(self.legs), self.legs.capacity, sip_leg.sip_call_id
            )
            sip_leg.reject(486, "Busy Here")
            return
        leg = Leg(
            sip_call_id=sip_leg.sip_call_id,
            caller=sip_leg.remote_user,
            caller_uri=sip_leg.remote_uri,
            called=sip_leg.local_user,
        )
        # Registered before answering: pjsua2 may report the media inside answer().
        self.legs.add(leg)
        self._by_sip_leg[sip_leg.id] = leg
        if not sip_leg.answer():
            self._by_sip_leg.pop(sip_leg.id, None)
            self.legs.remove(leg.call_id)
            return
        leg.apply(LegEvent.ANSWER)
        log.info("call %s from %r answered (sip %s)", leg.call_id, leg.caller, leg.sip_call_id)
        self.events.publish(CALL_ARRIVED, self._event_data(leg))

    def on_media_ready(self, sip_leg: SipLeg) -> None:
        if sip_leg.id not in self._by_sip_leg:
            return
        if self.greeting is not None:
            sip_leg.play(self.greeting)
        # Without a greeting the bridge sends silence until the caller hangs up.

    def on_disconnected(self, sip_leg: SipLeg, status_code: int, reason: str) -> None:
        leg = self._by_sip_leg.pop(sip_leg.id, None)
        if leg is None:
            return  # refused as busy: it never became one of our calls
        self.legs.remove(leg.call_id)
        leg.apply(LegEvent.HANG_UP)
        log.info("call %s ended after %.1fs (%d %s)", leg.call_id, leg.talk_seconds, status_code, reason)
        self.events.publish(
            CALL_ENDED,
            {**self._event_data(leg), "talk_seconds": round(leg.talk_seconds, 3), "sip_status": status_code},
        )

    def _event_data(self, leg: Leg) -> dict[str, Any]:
        return {
            "call_id": leg.call_id,
            "sip_call_id": leg.sip_call_id,
            "caller": leg.caller,
            "called": leg.called,
            "worker": self.worker,
        }
