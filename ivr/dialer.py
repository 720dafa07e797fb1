"""A worker's outbound calls: it claims requests (`ivr.outbound`) while it has room, dials, runs a scene.

Runs on the pjsua2 thread; Redis (claims, leases, results) and SQL (the CDR, direction "out") go
through `Offload`. A worker claims only when it could also take a new caller
(`LegTable.can_accept_caller`), so outbound calls never crowd out citizens calling 12345, and
claims one request at a time. A target that is a number is called through the public SIP address
(Kamailio, which sends it to the trunk); a `sip:` URI is called directly.

The callee hears a scene (`SCENES`): a class made with the call, started once the call is
answered and its audio flows, told of keys and of the end. What it reports (`OutboundCall.outcome`)
goes into the result with answered / busy / no answer / failed.

Every answered call is recorded like a call in: a scene opens with `OutboundCall.announce`, which
plays its introduction and the recording notice and only then records the callee's leg (a row
first, sealed with its sha256 when the call ends; `ivr.cdr.recover` marks it if the worker dies).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from acd.models import Disposition
from hotline import bus
from ivr import cdr, outbound
from ivr.flow import RECORDING_NOTICE
from ivr.legs import Leg, LegEvent, LegTable
from ivr.outbound import OutboundRequest, Result
from ivr.outbound_cdr import OutboundRow, answer_outbound, close_outbound, open_outbound
from ivr.playback import Playback
from ivr.sip import SipEdge, SipError, SipLeg

if TYPE_CHECKING:
    import redis

    from ivr.context import IvrContext
    from ivr.timers import Timer

log = logging.getLogger(__name__)

TRUNK_HEADER = "X-Hotline-Trunk"  # as ivr/templates/kamailio.cfg.j2 expects it
# An idle worker looks for requests when `outbound.WAKE` says one came (`Dialer.wake`, through the
# worker's subscription thread), and every POLL_S anyway: for a request whose worker died (its
# lease runs out with no announcement) and for a wake-up lost with a Redis connection.
POLL_S = 5.0
RENEW_S = outbound.LEASE_S / 3
# SIP final statuses of a call that was never answered, by what they mean to the requester.
BUSY_CODES = {486, 600, 603}
NO_ANSWER_CODES = {408, 480, 487}
DISPOSITIONS = {
    Result.ANSWERED: Disposition.ANSWERED,
    Result.BUSY: Disposition.BUSY,
    Result.NO_ANSWER: Disposition.NO_ANSWER,
    Result.FAILED: Disposition.FAILED,
}


class OutboundScene(Protocol):
    def start(self) -> None:
        """Answered and audio flowing: speak."""

    def on_dtmf(self, digit: str) -> None: ...

    def on_end(self) -> None:
        """The call is over (either side hung up)."""


SceneFactory = Callable[["OutboundCall"], OutboundScene]


class Notice:
    """Plays `data["prompts"]` and the goodbye, then hangs up: a message, no input."""

    def __init__(self, call: OutboundCall) -> None:
        self.call = call

    def start(self) -> None:
        self.call.announce(["outbound_hello"], self._message)

    def _message(self) -> None:
        prompts = [str(p) for p in self.call.request.data.get("prompts", [])]
        self.call.playback.play([*prompts, "goodbye"], on_done=self._done)

    def _done(self) -> None:
        self.call.outcome["heard"] = True
        self.call.leg.hangup()

    def on_dtmf(self, digit: str) -> None:
        pass

    def on_end(self) -> None:
        pass


def _scenes() -> dict[str, SceneFactory]:
    from ivr.callback_call import CallbackCall
    from ivr.revisit_call import RevisitCall

    return {"notice": Notice, "revisit": RevisitCall, "callback": CallbackCall}


class Dialer:
    """Claims outbound requests for one worker and keeps its calls' leases alive."""

    def __init__(self, ctx: IvrContext, edge: SipEdge, legs: LegTable) -> None:
        self.ctx = ctx
        self.edge = edge
        self.legs = legs
        self.calls: dict[str, OutboundCall] = {}  # by request id
        self.scenes = _scenes()
        self._claiming = False
        self._since_renew = 0.0
        self._redis: redis.Redis | None = None
        self._timer: Timer | None = None

    @property
    def is_edge(self) -> bool:
        """Whether this worker listens on the public SIP address (no Kamailio, so no trunk)."""
        config = self.edge.config
        return self.ctx.edge_address in (f"{config.host}:{config.sip_port}", f"127.0.0.1:{config.sip_port}")

    def start(self) -> None:
        self._timer = self.edge.call_later(POLL_S, self._tick)

    def client(self) -> redis.Redis:
        """The dialer's Redis connection (Redis thread only)."""
        if self._redis is None:
            self._redis = bus.connect(self.ctx.redis_url, timeout_s=2.0)
        return self._redis

    def _tick(self) -> None:
        self._timer = self.edge.call_later(POLL_S, self._tick)
        if self.ctx.stopping:
            return
        self._since_renew += POLL_S
        if self.calls and self._since_renew >= RENEW_S:
            self._since_renew = 0.0
            ids, worker = list(self.calls), self.ctx.worker
            self.ctx.offload.redis(lambda: outbound.renew(self.client(), worker, ids))
        if not self._claiming and self.legs.can_accept_caller():
            self._claiming = True
            worker = self.ctx.worker
            self.ctx.offload.redis(
                lambda: outbound.claim(self.client(), worker),
                on_done=self._claimed,
                on_error=lambda _exc: self._claim_failed(),
            )

    def wake(self) -> None:
        """A request was announced: look now, if this worker could take a call."""
        if not self._claiming and not self.ctx.stopping and self.legs.can_accept_caller():
            self._tick_soon()

    def _claim_failed(self) -> None:
        self._claiming = False  # Redis is down: the next tick tries again

    def _claimed(self, claimed: outbound.Claimed | None) -> None:
        self._claiming = False
        if claimed is None:
            return
        if claimed.request is None:  # lost its worker too often: given up in the claim
            self.ctx.events.publish(
                outbound.RESULT_EVENT,
                {"request_id": claimed.id, "result": Result.FAILED.value, "reason": "worker_lost"},
            )
            return
        request = claimed.request
        if self.ctx.stopping or not self.legs.can_accept_caller():
            # A caller took the room meanwhile: the request goes back for this or another worker.
            self.ctx.offload.redis(lambda: outbound.release(self.client(), request.id))
            return
        call = OutboundCall(self, request)
        self.calls[request.id] = call
        if request.scene not in self.scenes:
            # Nobody should be rung for a message that does not exist.
            call.note(why=f"unknown scene {request.scene!r}")
            call.report_failure()
            return
        call.dial()
        if self.legs.can_accept_caller():
            self._tick_soon()  # more may be waiting

    def _tick_soon(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.edge.call_later(0.0, self._tick)

    def ended(self, call: OutboundCall, result: dict[str, Any]) -> None:
        self.calls.pop(call.request.id, None)
        request_id, ctx = call.request.id, self.ctx
        if ctx.stopping and result["result"] != Result.ANSWERED.value:
            # Not the callee's doing: another worker (or this one, restarted) dials it again.
            ctx.offload.redis(lambda: outbound.release(self.client(), request_id))
            return
        ctx.offload.redis(lambda: outbound.finish(self.client(), request_id, result))
        ctx.events.publish(outbound.RESULT_EVENT, result)


@dataclass
class OutboundCall:
    """One placed call: ringing, then the scene, then the result (implements `DialListener`)."""

    dialer: Dialer
    request: OutboundRequest
    outcome: dict[str, Any] = field(default_factory=dict)  # what the scene learnt

    def __post_init__(self) -> None:
        ctx = self.ctx
        self.info = Leg(
            sip_call_id="", caller=self.request.caller_id, caller_uri="", called=self.request.target
        )
        self.leg: SipLeg | Any = None
        self.playback: Playback | Any = None
        self.scene: OutboundScene | None = None
        self.answered = False
        self.media = False
        self.ended = False
        self.recording: cdr.RecordingRef | None = None  # the callee's leg, once the notice has played
        self.on_recording: Callable[[cdr.RecordingRef], None] | None = None
        self.timed_out = False
        self.dialed_at = ctx.now()
        self.path: list[dict[str, Any]] = [{"outbound": self.request.scene, "request_id": self.request.id}]
        self._ring: Timer | None = None

    @property
    def ctx(self) -> IvrContext:
        return self.dialer.ctx

    @property
    def call_id(self) -> str:
        return self.info.call_id

    @property
    def direct(self) -> bool:
        """A SIP URI is called as it is; a number goes out through the edge and its trunk."""
        return self.request.target.startswith(("sip:", "sips:"))

    def uri(self) -> str:
        target = self.request.target
        return target if self.direct else f"sip:{target}@{self.ctx.edge_address}"

    def dial(self) -> None:
        ctx, request = self.ctx, self.request
        self.dialer.legs.add(self.info)
        try:
            if not self.direct and self.dialer.is_edge:
                # No Kamailio in front: the number would be dialled to this worker's own IVR.
                raise SipError("no trunk: this worker is the public SIP address itself")
            self.leg = self.dialer.edge.dial(
                self.uri(),
                self,
                from_uri=f"sip:{request.caller_id}@{ctx.edge_address}",
                # Tells Kamailio this is a call out (to the trunk), not one for a seat or the IVR.
                headers={} if self.direct else {TRUNK_HEADER: "1"},
            )
        except SipError as exc:
            log.warning("outbound %s to %s: %s", request.id, request.target, exc)
            self.dialer.legs.remove(self.call_id)
            self.note(why=str(exc))
            self.report_failure()
            return
        self.info.sip_call_id = self.leg.sip_call_id
        assert ctx.scheduler is not None
        self.playback = Playback(self.leg, ctx.book, ctx.scheduler)
        self._ring = self.dialer.edge.call_later(request.ring_s, self._ring_timeout)
        row = self.row()
        ctx.offload.sql(lambda: open_outbound(ctx.factory, row))
        log.info("outbound %s: calling %s (call %s)", request.id, request.target, self.call_id)
        self._publish("outbound.dialing", target=request.target)

    def report_failure(self) -> None:
        """Never placed: a failed attempt on record (CDR and result), nobody rung."""
        self.note(sip_status=0)
        self._record_and_report(Result.FAILED, 0)

    def _ring_timeout(self) -> None:
        if not self.answered:
            self.timed_out = True
            self.leg.hangup()  # CANCEL

    # DialListener --------------------------------------------------------------------------------
    def on_answered(self, leg: SipLeg) -> None:
        if self._ring is not None:
            self._ring.cancel()
        self.answered = True
        self.info.apply(LegEvent.ANSWER)
        ctx, call_id, at = self.ctx, self.call_id, self.ctx.now()
        ctx.offload.sql(lambda: answer_outbound(ctx.factory, call_id, at))
        self._publish("outbound.answered", target=self.request.target)
        self._start_scene()

    def on_media_ready(self, leg: SipLeg) -> None:
        self.media = True
        self._start_scene()

    def _start_scene(self) -> None:
        # Early media (183) comes before the answer; the scene waits for both.
        if self.answered and self.media and self.scene is None:
            factory = self.dialer.scenes[self.request.scene]
            try:
                self.scene = factory(self)
                self.scene.start()
            except Exception:
                # A request the scene cannot use (no ticket_id...): no silent line left open.
                log.exception("outbound %s: scene %r failed", self.request.id, self.request.scene)
                self.outcome["scene_error"] = True
                self.leg.hangup()

    def on_dtmf(self, leg: SipLeg, digit: str, method: str) -> None:
        if self.scene is not None:
            self.scene.on_dtmf(digit)

    def on_transfer_status(self, leg: SipLeg, status_code: int, reason: str, final: bool) -> None:
        pass

    def on_disconnected(self, leg: SipLeg, status_code: int, reason: str) -> None:
        self.ended = True
        if self._ring is not None:
            self._ring.cancel()
        if self.playback is not None:
            self.playback.stop()
        self.dialer.legs.remove(self.call_id)
        self.info.apply(LegEvent.HANG_UP)
        if self.scene is not None:
            try:
                self.scene.on_end()
            except Exception:
                log.exception("outbound %s: ending its scene failed", self.request.id)
        if self.answered:
            result = Result.ANSWERED
        elif self.timed_out or status_code in NO_ANSWER_CODES:
            result = Result.NO_ANSWER
        elif status_code in BUSY_CODES:
            result = Result.BUSY
        else:
            result = Result.FAILED
        self.path.append({"sip_status": status_code, "reason": reason})
        log.info(
            "outbound %s to %s: %s (%d %s)", self.request.id, self.request.target, result, status_code, reason
        )
        self._record_and_report(result, status_code)

    # Recording -----------------------------------------------------------------------------------
    def announce(self, before: list[str], then: Callable[[], None]) -> None:
        """Play `before` and the recording notice, then record the callee's leg and go on with `then`.

        The notice cannot be cut short by a key: nothing is recorded before it has been heard.
        """
        self.playback.play([*before, RECORDING_NOTICE], on_done=lambda: self._announced(then))

    def _announced(self, then: Callable[[], None]) -> None:
        if self.ended:
            return
        ctx, call_id = self.ctx, self.call_id
        ctx.offload.sql(
            lambda: cdr.register_recording(ctx.factory, ctx.recordings_root, call_id, cdr.CALLER_LEG),
            on_done=self._recording_registered,
        )
        then()

    def _recording_registered(self, ref: cdr.RecordingRef) -> None:
        if self.ended or not self.leg.start_recording(ref.path):
            # Hung up meanwhile (or the recorder failed): no file, so no row either.
            ctx = self.ctx
            ctx.offload.sql(lambda: cdr.drop_recordings(ctx.factory, (ref,)))
            return
        self.recording = ref
        if self.on_recording is not None:
            self.on_recording(ref)

    # Records -------------------------------------------------------------------------------------
    def note(self, **entry: Any) -> None:
        """What the scene did, for the CDR's path."""
        self.path.append(entry)

    def _record_and_report(self, result: Result, status_code: int) -> None:
        ctx = self.ctx
        disposition = DISPOSITIONS[result]
        if ctx.stopping and not self.answered:
            disposition = Disposition.FAILED
        self.path.append({"result": result.value, **self.outcome})
        closed = (self.row(), ctx.now(), disposition, list(self.path))

        def report(_done: object = None) -> None:
            # Built now: what the scene stored meanwhile (a rating) is part of the result.
            self.dialer.ended(
                self,
                {
                    "request_id": self.request.id,
                    "call_id": self.call_id,
                    "worker": ctx.worker,
                    "scene": self.request.scene,
                    "target": self.request.target,
                    "result": result.value,
                    "sip_status": status_code,
                    "talk_seconds": round(self.info.talk_seconds, 3),
                    **self.outcome,
                },
            )

        if self.recording is not None:
            refs, root = (self.recording,), ctx.recordings_root
            ctx.offload.sql(lambda: cdr.seal_recordings(ctx.factory, root, refs))
        if ctx.stopping:  # the pjsua2 loop is ending: nothing posted back would run
            ctx.offload.sql(lambda: close_outbound(ctx.factory, *closed))
            report()
            return
        # Reported once the CDR is written, after the scene's own writes (one SQL thread, in order),
        # so whoever reads the result finds the records; a database that is down delays nothing.
        ctx.offload.sql(lambda: close_outbound(ctx.factory, *closed), on_done=report, on_error=report)

    def row(self) -> OutboundRow:
        request = self.request
        return OutboundRow(
            self.call_id, request.caller_id, request.target, self.ctx.record_name, self.dialed_at
        )

    def _publish(self, type_: str, **data: Any) -> None:
        self.ctx.events.publish(
            type_,
            {"request_id": self.request.id, "call_id": self.call_id, "worker": self.ctx.worker, **data},
        )
