"""The pjsua2 Endpoint: transports, the account, the call table, timers and the job queue.

Everything here runs on the one thread that calls `SipEdge.start()` and `SipEdge.poll()`
(`threadCnt = 0`, `mainThreadOnly`, media on the SIP ioqueue): pjsua2 callbacks are turned into
calls on a `LegListener`, other threads hand work in with `SipEdge.post()`, and timers set with
`call_later` run between polls. The rules from TELEPHONY.md that shape this module:
- a `pj.Call` wrapper stays referenced (in `SipEdge._calls`) until its call is DISCONNECTED; its
  last reference goes in that DISCONNECTED callback, so CPython frees it as the callback returns:
  pjsua2's documented `delete this` point, on this thread, before pjsua can give the call slot to
  a new INVITE (`Call::~Call()` detaches and hangs up whatever call holds its slot). Nothing else
  may hold it strongly: `SipLeg` keeps a weak reference, and no reference cycle includes it;
- players and recorders are destroyed only a quarter second after they were disconnected: since
  pjproject 2.14 the conference bridge connects, disconnects and removes ports asynchronously
  (queued ops run on its clock thread at the next tick), but `pjsua_player_destroy` frees the
  port at once, so a player destroyed right after `stopTransmit` is still read by the clock
  thread (a segfault, seen here under load). Whoever seals a recording waits for its header;
- every wrapper (players, recorders, calls, the account) is released before `libDestroy()`.
"""

from __future__ import annotations

import logging
import queue
import socket
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pjsua2 as pj

from ivr.sip.leg import SipLeg
from ivr.sip.wrappers import Account, Call, op
from ivr.timers import Timer, Timers

log = logging.getLogger(__name__)

# What the transports bind to when the host is a wildcard, seen from this machine.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
# An RFC 5626 CRLF keep-alive: pjsip drops it silently, but it wakes the ioqueue's select().
_WAKE_PACKET = b"\r\n\r\n"
# How long a disconnected player or recorder is kept before it is destroyed: many bridge ticks
# (20 ms each) for the queued disconnects to have run on the clock thread, and well within the
# second after which pjsua closes an unused sound device. That device is the bridge's clock: a
# removal queued after it closed runs only when the next call opens it, so a recorder destroyed
# late would finish its file (and change it) long after the call.
RELEASE_DELAY_S = 0.25


class SipError(RuntimeError):
    """pjsua2 refused to start (port in use, bad address, ...)."""


@dataclass(frozen=True)
class EdgeConfig:
    host: str
    sip_port: int
    rtp_port: int
    rtp_port_range: int
    max_calls: int
    tcp: bool = True
    # pjsua log level for the console: 1 errors, 2 warnings, 3 info, 4+ debug (with SIP messages).
    log_level: int = 2
    user_agent: str = "hotline12345-ivr"
    # What the phone network carries, in order of preference; every other codec is disabled.
    codecs: tuple[str, ...] = ("PCMA/8000", "PCMU/8000", "G722/16000")


class LegListener(Protocol):
    """What the edge reports; called on the pjsua2 thread, so implementations must not block."""

    def on_incoming(self, leg: SipLeg) -> None:
        """A new INVITE: answer or reject it before returning."""

    def on_media_ready(self, leg: SipLeg) -> None:
        """Audio is flowing both ways for the first time."""

    def on_dtmf(self, leg: SipLeg, digit: str, method: str) -> None:
        """A key pressed by the caller (RFC 2833 or SIP INFO)."""

    def on_transfer_status(self, leg: SipLeg, status_code: int, reason: str, final: bool) -> None:
        """Progress of a REFER this leg sent (the NOTIFYs of the transfer target's call)."""

    def on_disconnected(self, leg: SipLeg, status_code: int, reason: str) -> None:
        """The call is over (hung up by either side, rejected or cancelled); recorders are closed."""


class DialListener(Protocol):
    """What the edge reports about a call it placed (`SipEdge.dial`); pjsua2 thread, never blocks."""

    def on_answered(self, leg: SipLeg) -> None:
        """The callee answered (200 OK, ACKed)."""

    def on_media_ready(self, leg: SipLeg) -> None: ...

    def on_dtmf(self, leg: SipLeg, digit: str, method: str) -> None: ...

    def on_transfer_status(self, leg: SipLeg, status_code: int, reason: str, final: bool) -> None: ...

    def on_disconnected(self, leg: SipLeg, status_code: int, reason: str) -> None:
        """Over: hung up, or never answered (486 busy, 408/480 no answer, 4xx-6xx failed)."""


class SipEdge:
    """One pjsua2 Endpoint with UDP/TCP transports and an account that takes calls to any user."""

    def __init__(self, config: EdgeConfig, listener: LegListener) -> None:
        self.config = config
        self.listener = listener
        self._ep: Any = None
        self._account: Account | None = None
        self._calls: dict[str, Call] = {}  # by SipLeg.id (pjsua reuses its call ids), while up
        # Disconnected players and recorders, destroyed once their deadline has passed, and
        # handles to check that ended calls' wrappers are gone, after each poll.
        self._spent: list[tuple[float, list[Any]]] = []
        self._ended_legs: list[SipLeg] = []
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.timers = Timers()
        # Every wrapper ever made, weakly: what is still alive after its call ended is a leak.
        self._live: dict[str, weakref.WeakSet[Any]] = {
            "calls": weakref.WeakSet(),
            "players": weakref.WeakSet(),
            "recorders": weakref.WeakSet(),
        }
        self._waker: socket.socket | None = None
        self._wake_addr: tuple[Any, ...] = ()

    # Lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.config
        self._ep = pj.Endpoint()
        self._ep.libCreate()
        ep_cfg = pj.EpConfig()
        ua = ep_cfg.uaConfig
        ua.threadCnt = 0
        ua.mainThreadOnly = True
        ua.maxCalls = cfg.max_calls
        ua.userAgent = cfg.user_agent
        med = ep_cfg.medConfig
        # Media shares the SIP ioqueue that this thread polls: pjmedia's own ioqueue thread wakes
        # every 10 ms even with nothing to do, which is most of an idle pool's CPU.
        med.hasIoqueue = False
        med.threadCnt = 0
        # Telephone audio: an 8 kHz bridge avoids resampling G.711 and 8 kHz prompts.
        med.clockRate = 8000
        med.sndClockRate = 8000
        med.ecTailLen = 0
        # Keep sending RTP during silence: trunks and SBCs drop calls whose media goes quiet.
        med.noVad = True
        logc = ep_cfg.logConfig
        logc.level = cfg.log_level
        logc.consoleLevel = cfg.log_level
        logc.msgLogging = cfg.log_level >= 4
        try:
            self._ep.libInit(ep_cfg)
            # The wheel has no sound device; the null device still clocks the conference bridge.
            self._ep.audDevManager().setNullDev()
            transport = pj.TransportConfig()
            transport.port = cfg.sip_port
            if cfg.host not in _LOOPBACK:
                transport.boundAddress = cfg.host
            self._ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
            if cfg.tcp:
                self._ep.transportCreate(pj.PJSIP_TRANSPORT_TCP, transport)
            self._ep.libStart()
            self._set_codecs()
            self._account = Account(self)
            self._account.create(self._account_config(), True)
        except pj.Error as exc:
            self._destroy()
            raise SipError(f"SIP on {cfg.host}:{cfg.sip_port}: {exc.reason} ({exc.title})") from exc
        wake_host = _LOOPBACK.get(cfg.host, cfg.host)
        family = socket.AF_INET6 if ":" in wake_host else socket.AF_INET
        self._waker = socket.socket(family, socket.SOCK_DGRAM)
        self._wake_addr = (wake_host, cfg.sip_port)
        transports = "udp+tcp" if cfg.tcp else "udp"
        last_rtp = cfg.rtp_port + cfg.rtp_port_range - 1
        log.info(
            "SIP on %s:%d (%s), rtp %d-%d, %d legs",
            cfg.host,
            cfg.sip_port,
            transports,
            cfg.rtp_port,
            last_rtp,
            cfg.max_calls,
        )

    def _set_codecs(self) -> None:
        wanted = {name.lower(): 255 - i for i, name in enumerate(self.config.codecs)}
        for codec in self._ep.codecEnum2():
            # pjsua names codecs "PCMA/8000/1": the channel count is left out of the setting.
            name = codec.codecId.rsplit("/", 1)[0].lower()
            self._ep.codecSetPriority(codec.codecId, wanted.get(name, 0))

    def _account_config(self) -> Any:
        cfg = self.config
        uri_host = _LOOPBACK.get(cfg.host, cfg.host)
        if ":" in uri_host:
            uri_host = f"[{uri_host}]"
        acc = pj.AccountConfig()
        # No registration: the account only gives incoming calls (to any user) somewhere to land.
        acc.idUri = f"sip:ivr@{uri_host}:{cfg.sip_port}"
        acc.regConfig.registrarUri = ""
        rtp = acc.mediaConfig.transportConfig
        rtp.port = cfg.rtp_port
        rtp.portRange = cfg.rtp_port_range
        if cfg.host not in _LOOPBACK:
            rtp.boundAddress = cfg.host
        return acc

    def poll(self, timeout_ms: int) -> None:
        """Wait up to `timeout_ms` (less if a timer is due sooner) for SIP/RTP events, then run due
        timers and posted jobs, and release what ended calls left behind."""
        due = self.timers.next_delay()
        if self._spent:
            # Spent wrappers are released on time even by an idle worker (see RELEASE_DELAY_S).
            spent_due = max(0.0, self._spent[0][0] - time.monotonic())
            due = spent_due if due is None else min(due, spent_due)
        if due is not None:
            timeout_ms = min(timeout_ms, int(due * 1000) + 1)
        self._ep.libHandleEvents(timeout_ms)
        self.timers.run_due()
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            try:
                job()
            except Exception:
                log.exception("posted job failed")
        self._release_spent()

    def post(self, job: Callable[[], None]) -> None:
        """Run `job` on the pjsua2 thread soon; callable from any thread."""
        self._jobs.put(job)
        waker = self._waker
        if waker is not None:
            try:
                waker.sendto(_WAKE_PACKET, self._wake_addr)
            except OSError:
                pass  # the loop still runs the job at its next timeout

    def call_later(self, delay_s: float, job: Callable[[], None]) -> Timer:
        """Run `job` on the pjsua2 thread after `delay_s`; only from the pjsua2 thread."""
        return self.timers.call_later(delay_s, job)

    def dial(
        self,
        uri: str,
        listener: DialListener,
        *,
        from_uri: str = "",
        headers: dict[str, str] | None = None,
    ) -> SipLeg:
        """Place a call to `uri`; its progress goes to `listener`. `SipError` if it cannot start."""
        if self._account is None:
            raise SipError("SIP is not started")
        call = Call(self, self._account, pj.PJSUA_INVALID_ID)
        call.listener = listener
        prm = op(0, headers=headers)
        prm.opt.audioCount = 1
        prm.opt.videoCount = 0
        if from_uri:
            prm.txOption.localUri = from_uri
        try:
            call.makeCall(uri, prm)
        except pj.Error as exc:
            raise SipError(f"cannot call {uri}: {exc.reason}") from exc
        self._track("calls", call)
        leg = SipLeg(call, call.getInfo())
        call.leg = leg
        self._calls[leg.id] = call  # referenced until DISCONNECTED, like an incoming call
        return leg

    def wrapper_counts(self) -> dict[str, int]:
        """pjsua2 wrappers alive now, by kind; all zero on an idle worker (read from any thread)."""
        return {kind: len(alive) for kind, alive in self._live.items()}

    @property
    def calls_up(self) -> int:
        """Calls pjsua2 still holds, including ones not yet answered."""
        return len(self._calls)

    def hangup_all(self) -> None:
        for call in list(self._calls.values()):
            if call.leg is not None:
                call.leg.hangup()

    def shutdown(self, grace_ms: int = 3000) -> None:
        """Hang up every call, wait up to `grace_ms` for them to end, release everything, destroy."""
        if self._ep is None:
            return
        self.hangup_all()
        waited = 0
        while self._calls and waited < grace_ms:
            self.poll(50)
            waited += 50
        if self._calls:
            log.warning("%d call(s) did not end within %d ms; dropping them", len(self._calls), grace_ms)
            for call in self._calls.values():
                self._retire([*call.players, *call.recorders.values()])
                call.players.clear()
                call.recorders.clear()
            # Still before libDestroy(): ~Call() hangs up what is left.
            self._calls.clear()
        # Let the bridge run the queued disconnects before the last players and recorders go.
        deadline = time.monotonic() + RELEASE_DELAY_S
        while self._spent and time.monotonic() < deadline:
            self.poll(50)
        self._release_spent(everything=True)
        self._destroy()

    def _destroy(self) -> None:
        if self._account is not None:
            try:
                self._account.shutdown()
            except pj.Error:
                pass
            self._account = None
        if self._ep is not None:
            # Calls were hung up (and waited for) already; without NO_NETWORK pjsua sleeps a
            # further second for unregistrations this account never makes.
            self._ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)
            self._ep = None
        if self._waker is not None:
            self._waker.close()
            self._waker = None

    # Callbacks from the wrappers (pjsua2 thread) ---------------------------------------------
    def _track(self, kind: str, wrapper: Any) -> None:
        self._live[kind].add(wrapper)

    def _retire(self, wrappers: list[Any]) -> None:
        """Destroy these (already disconnected) players or recorders after RELEASE_DELAY_S."""
        if wrappers:
            self._spent.append((time.monotonic() + RELEASE_DELAY_S, list(wrappers)))

    def _incoming(self, account: Account, call_id: int, message: str) -> None:
        call = Call(self, account, call_id)
        self._track("calls", call)
        leg = SipLeg(call, call.getInfo(), message)
        call.leg = leg
        self._calls[leg.id] = call
        try:
            self.listener.on_incoming(leg)
        except Exception:
            log.exception("listener failed on incoming call %s", leg.sip_call_id)
            call.hangup(op(500))

    def _media_up(self, call: Call) -> None:
        # The null sound device is the conference bridge's clock: without it no RTP is sent.
        # pjsua closes it one second after the bridge was last "in use" (sndAutoCloseTime), and
        # only a conference connection counts as use, not a call. Connecting the caller to it
        # keeps the clock running while a call is up, and lets it stop when the worker is idle.
        try:
            call.audio.startTransmit(self._ep.audDevManager().getPlaybackDevMedia())
        except pj.Error as exc:
            log.warning("cannot connect a call to the bridge clock: %s", exc.reason)
        if call.leg is not None:
            (call.listener or self.listener).on_media_ready(call.leg)

    def _dtmf(self, call: Call, digit: str, method: str) -> None:
        if call.leg is not None:
            (call.listener or self.listener).on_dtmf(call.leg, digit, method)

    def _transfer_status(self, call: Call, status_code: int, reason: str, final: bool) -> None:
        if call.leg is not None:
            (call.listener or self.listener).on_transfer_status(call.leg, status_code, reason, final)

    def _call_confirmed(self, call: Call) -> None:
        # Only calls placed here care: an incoming call is ours from the moment we answer it.
        if call.leg is not None and call.listener is not None and not call.leg.answered:
            call.leg.answered = True
            call.listener.on_answered(call.leg)

    def _call_disconnected(self, call: Call, status_code: int, reason: str) -> None:
        # Drop our reference: the wrapper dies when pjsua2's DISCONNECTED callback returns.
        # Players and recorders are not tied to a call slot: they go after RELEASE_DELAY_S.
        if call.leg is None:
            return
        self._calls.pop(call.leg.id, None)
        self._retire([*call.players, *call.recorders.values()])
        call.players.clear()
        call.recorders.clear()
        call.audio = None
        self._ended_legs.append(call.leg)
        listener, call.listener = call.listener or self.listener, None
        listener.on_disconnected(call.leg, status_code, reason)

    def _release_spent(self, everything: bool = False) -> None:
        now = time.monotonic()
        while self._spent and (everything or self._spent[0][0] <= now):
            self._spent.pop(0)  # the last references: pjsua destroys them here
        for leg in self._ended_legs:
            if leg.call_alive:
                # Something kept the wrapper alive; it would hang up the next call in its slot.
                log.error("call wrapper of %s outlived its call", leg.sip_call_id)
        self._ended_legs.clear()
