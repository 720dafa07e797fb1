"""What a worker does with each call: admit or refuse it, answer it, run its flow, report it.

Implements `ivr.sip.LegListener` on the pjsua2 thread: it must not block, so bus events go
through the `EventSink` (a queue drained by another thread) and records through `Offload`.
Each answered call gets a `CallFlow` (the IVR), which lives until the call is disconnected.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ivr.flow import WALLBOARD_ROOMS, CallFlow
from ivr.legs import Leg, LegEvent, LegTable

if TYPE_CHECKING:
    from ivr.context import EventSink, IvrContext
    from ivr.sip import SipLeg

log = logging.getLogger(__name__)

CALL_ARRIVED = "call.arrived"
CALL_ENDED = "call.ended"


class CallController:
    def __init__(self, worker: str, legs: LegTable, events: EventSink, ctx: IvrContext) -> None:
        self.worker = worker
        self.legs = legs
        self.events = events
        self.ctx = ctx
        self._by_sip_leg: dict[str, tuple[Leg, CallFlow]] = {}

    @property
    def flows(self) -> int:
        return len(self._by_sip_leg)

    def on_incoming(self, sip_leg: SipLeg) -> None:
        if sip_leg.referred_by:
            # A transfer the IVR asked for came back to the edge: there is no trunk to reach
            # outside numbers yet, and answering it here would put the caller back in the menu.
            # 404 goes back to the caller's phone (not 503: Kamailio would fail over to a worker).
            log.info("transfer to %s refused: no outbound trunk", sip_leg.local_user)
            sip_leg.reject(404, "No Route To Transfer Target")
            return
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
        flow = CallFlow(self.ctx, sip_leg, leg)
        self._by_sip_leg[sip_leg.id] = (leg, flow)
        if not sip_leg.answer():
            self._by_sip_leg.pop(sip_leg.id, None)
            self.legs.remove(leg.call_id)
            return
        leg.apply(LegEvent.ANSWER)
        log.info("call %s from %r answered (sip %s)", leg.call_id, leg.caller, leg.sip_call_id)
        self.events.publish(CALL_ARRIVED, self._event_data(leg), WALLBOARD_ROOMS)
        flow.opened_call()

    def on_media_ready(self, sip_leg: SipLeg) -> None:
        found = self._by_sip_leg.get(sip_leg.id)
        if found is not None:
            found[1].start()

    def on_dtmf(self, sip_leg: SipLeg, digit: str, method: str) -> None:
        found = self._by_sip_leg.get(sip_leg.id)
        if found is not None:
            found[1].on_dtmf(digit, method)

    def on_transfer_status(self, sip_leg: SipLeg, status_code: int, reason: str, final: bool) -> None:
        found = self._by_sip_leg.get(sip_leg.id)
        if found is not None:
            found[1].on_transfer_status(status_code, reason, final)

    def on_disconnected(self, sip_leg: SipLeg, status_code: int, reason: str) -> None:
        found = self._by_sip_leg.pop(sip_leg.id, None)
        if found is None:
            return  # refused: it never became one of our calls
        leg, flow = found
        self.legs.remove(leg.call_id)
        leg.apply(LegEvent.HANG_UP)
        try:
            flow.end(status_code)
        except Exception:
            log.exception("call %s: closing its flow failed", leg.call_id)
        log.info("call %s ended after %.1fs (%d %s)", leg.call_id, leg.talk_seconds, status_code, reason)
        self.events.publish(
            CALL_ENDED,
            {
                **self._event_data(leg),
                "talk_seconds": round(leg.talk_seconds, 3),
                "sip_status": status_code,
            },
            WALLBOARD_ROOMS,
        )

    def _event_data(self, leg: Leg) -> dict[str, Any]:
        return {
            "call_id": leg.call_id,
            "sip_call_id": leg.sip_call_id,
            "caller": leg.caller,
            "called": leg.called,
            "worker": self.worker,
        }
