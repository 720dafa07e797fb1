"""The pjsua2 edge: the only module that imports pjsua2; it owns the Endpoint and every wrapper.

Everything here runs on the one thread that calls `SipEdge.start()` and `SipEdge.poll()`
(`threadCnt = 0`, `mainThreadOnly`, media on the SIP ioqueue): pjsua2 callbacks are turned into
calls on a `LegListener`, and other threads hand work in with `SipEdge.post()`. The rules from
TELEPHONY.md that shape this module:
- a `pj.Call` wrapper stays referenced (in `SipEdge._calls`) until its call is DISCONNECTED; its
  last reference goes in that DISCONNECTED callback, so CPython frees it as the callback returns:
  pjsua2's documented `delete this` point, on this thread, before pjsua can give the call slot to
  a new INVITE (`Call::~Call()` detaches and hangs up whatever call holds its slot). Nothing else
  may hold it strongly: `SipLeg` keeps a weak reference, and no reference cycle includes it;
- every wrapper (players, calls, the account) is released before `libDestroy()`.
"""

from __future__ import annotations

import logging
import queue
import re
import socket
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pjsua2 as pj

log = logging.getLogger(__name__)

# What the transports bind to when the host is a wildcard, seen from this machine.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
# An RFC 5626 CRLF keep-alive: pjsip drops it silently, but it wakes the ioqueue's select().
_WAKE_PACKET = b"\r\n\r\n"
_USER_RE = re.compile(r"<?sips?:([^@;>]+)@")


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


class LegListener(Protocol):
    """What the edge reports; called on the pjsua2 thread, so implementations must not block."""

    def on_incoming(self, leg: SipLeg) -> None:
        """A new INVITE: answer or reject it before returning."""

    def on_media_ready(self, leg: SipLeg) -> None:
        """Audio is flowing both ways for the first time."""

    def on_disconnected(self, leg: SipLeg, status_code: int, reason: str) -> None:
        """The call is over (hung up by either side, rejected or cancelled)."""


class SipLeg:
    """The listener's handle on one call; safe to keep after the call ended (it just does nothing)."""

    def __init__(self, call: _Call, info: Any) -> None:
        self.id = uuid.uuid4().hex
        self._call = weakref.ref(call)
        self.sip_call_id: str = info.callIdString
        self.remote_uri: str = info.remoteUri
        self.local_uri: str = info.localUri
        self.answered = False

    @property
    def call_alive(self) -> bool:
        """Whether the pjsua2 wrapper still exists (only while the call is up)."""
        return self._call() is not None

    @property
    def remote_user(self) -> str:
        """The caller's number (user part of the From URI), or "" for anonymous callers."""
        match = _USER_RE.search(self.remote_uri)
        return match.group(1) if match else ""

    @property
    def local_user(self) -> str:
        match = _USER_RE.search(self.local_uri)
        return match.group(1) if match else ""

    def answer(self) -> bool:
        """200 OK; False when the call is already gone (the caller gave up meanwhile)."""
        self.answered = self._do("answer", 200)
        return self.answered

    def reject(self, status_code: int, reason: str) -> bool:
        return self._do("hangup", status_code, reason)

    def hangup(self) -> bool:
        """BYE after the answer; before it, 503 (Kamailio then tries another worker)."""
        return self._do("hangup", 200 if self.answered else 503)

    def _do(self, action: str, status_code: int, reason: str = "") -> bool:
        call = self._call()
        if call is None:
            return False
        try:
            getattr(call, action)(_op(status_code, reason))
        except pj.Error as exc:
            log.warning("%s %d on %s failed: %s", action, status_code, self.sip_call_id, exc.reason)
            return False
        return True

    def play(self, path: Path) -> bool:
        """Play a WAV file to the caller once; False when it cannot (no media, bad file)."""
        call = self._call()
        if call is None or call.audio is None:
            return False
        player = pj.AudioMediaPlayer()
        try:
            player.createPlayer(str(path), pj.PJMEDIA_FILE_NO_LOOP)
            player.startTransmit(call.audio)
        except pj.Error as exc:
            log.warning("cannot play %s to %s: %s", path, self.sip_call_id, exc.reason)
            return False
        # Owned by the call: released with it, on this thread, before libDestroy().
        call.players.append(player)
        return True


def _op(status_code: int, reason: str = "") -> Any:
    prm = pj.CallOpParam()
    prm.statusCode = status_code
    if reason:
        prm.reason = reason
    return prm


class _Call(pj.Call):  # type: ignore[misc]
    """pjsua2's Call with its camelCase callbacks; knows its SipLeg, audio and players."""

    def __init__(self, edge: SipEdge, account: _Account, call_id: int) -> None:
        super().__init__(account, call_id)
        self.edge = edge
        self.leg: SipLeg | None = None
        self.audio: Any = None
        self.players: list[Any] = []

    def onCallState(self, prm: Any) -> None:
        try:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.edge._call_disconnected(self, info.lastStatusCode, info.lastReason)
        except Exception:
            log.exception("onCallState failed")

    def onCallMediaState(self, prm: Any) -> None:
        try:
            info = self.getInfo()
            for media in info.media:
                if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                    first = self.audio is None
                    self.audio = self.getAudioMedia(media.index)
                    if first:
                        self.edge._media_up(self)
                    return
        except Exception:
            log.exception("onCallMediaState failed")


class _Account(pj.Account):  # type: ignore[misc]
    """The one account: receives every incoming INVITE, whatever user it is for."""

    def __init__(self, edge: SipEdge) -> None:
        super().__init__()
        self.edge = edge

    def onIncomingCall(self, prm: Any) -> None:
        try:
            self.edge._incoming(self, prm.callId)
        except Exception:
            log.exception("onIncomingCall failed")


class SipEdge:
    """One pjsua2 Endpoint with UDP/TCP transports and an account that takes calls to any user."""

    def __init__(self, config: EdgeConfig, listener: LegListener) -> None:
        self.config = config
        self.listener = listener
        self._ep: Any = None
        self._account: _Account | None = None
        self._calls: dict[str, _Call] = {}  # by SipLeg.id (pjsua reuses its call ids), while up
        # Players of ended calls and handles to check their wrappers are gone, after each poll.
        self._spent_players: list[Any] = []
        self._ended_legs: list[SipLeg] = []
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
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
            self._account = _Account(self)
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
        """Wait up to `timeout_ms` for SIP/RTP events, then run posted jobs and release ended calls."""
        self._ep.libHandleEvents(timeout_ms)
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
                self._spent_players.extend(call.players)
                call.players.clear()
            # Still before libDestroy(): ~Call() hangs up what is left.
            self._calls.clear()
        self._release_spent()
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
    def _incoming(self, account: _Account, call_id: int) -> None:
        call = _Call(self, account, call_id)
        leg = SipLeg(call, call.getInfo())
        call.leg = leg
        self._calls[leg.id] = call
        try:
            self.listener.on_incoming(leg)
        except Exception:
            log.exception("listener failed on incoming call %s", leg.sip_call_id)
            call.hangup(_op(500))

    def _media_up(self, call: _Call) -> None:
        # The null sound device is the conference bridge's clock: without it no RTP is sent.
        # pjsua closes it one second after the bridge was last "in use" (sndAutoCloseTime), and
        # only a conference connection counts as use, not a call. Connecting the caller to it
        # keeps the clock running while a call is up, and lets it stop when the worker is idle.
        try:
            call.audio.startTransmit(self._ep.audDevManager().getPlaybackDevMedia())
        except pj.Error as exc:
            log.warning("cannot connect a call to the bridge clock: %s", exc.reason)
        if call.leg is not None:
            self.listener.on_media_ready(call.leg)

    def _call_disconnected(self, call: _Call, status_code: int, reason: str) -> None:
        # Drop our reference: the wrapper dies when pjsua2's DISCONNECTED callback returns.
        # Players are not tied to a call slot, so they can wait for the end of this poll.
        if call.leg is None:
            return
        self._calls.pop(call.leg.id, None)
        self._spent_players.extend(call.players)
        call.players.clear()
        call.audio = None
        self._ended_legs.append(call.leg)
        self.listener.on_disconnected(call.leg, status_code, reason)

    def _release_spent(self) -> None:
        self._spent_players.clear()
        for leg in self._ended_legs:
            if leg.call_alive:
                # Something kept the wrapper alive; it would hang up the next call in its slot.
                log.error("call wrapper of %s outlived its call", leg.sip_call_id)
        self._ended_legs.clear()
