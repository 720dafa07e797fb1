"""`hotline phone`: a softphone for an agent's PC, registered to the hotline as a seat extension.

It registers to the hotline's Kamailio with the seat's digest credentials, answers the calls the
ACD offers (at once with `auto_answer`, else on `answer`), and carries the audio either through
the PC's headset (`sounddevice`, bridged into pjsua2 by an `AudioMediaPort`) or, headless, from
and to WAV files: `wav_in` is what the agent says (played from the answer on, repeated), `wav_out`
what the agent hears (one file per call: `out.wav`, `out-2.wav`, ...).

Everything pjsua2 does runs on the thread that calls `Softphone.run` (TELEPHONY.md); lines typed
on stdin (`answer`, `hangup`, `dial <uri>`, `quit`) and the headset's audio callbacks reach it or
the bridge through queues. What happens is printed one line each: `registered <code>`,
`incoming <uri>`, `answered`, `ended <code>`, `closed <wav>`, `error <text>`.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pjsua2 as pj

from ivr.sip.headset import FRAME_MS, RATE, Headset, HeadsetPort

log = logging.getLogger(__name__)

CODECS = ("PCMA/8000", "PCMU/8000", "G722/16000")
# A player or recorder is destroyed this long after its call ended: the conference bridge removes
# ports on its clock thread at the next tick, and destroying one sooner can crash (see ivr.sip.edge).
RELEASE_DELAY_S = 0.25
CLOSE_WAIT_S = 2.0  # for the bridge to write a recording's final header


def wav_complete(path: Path) -> bool:
    """Whether a WAV file's RIFF header states its full length (pjmedia writes it at the close)."""
    try:
        with path.open("rb") as wav:
            head = wav.read(8)
        return len(head) == 8 and int.from_bytes(head[4:8], "little") + 8 == path.stat().st_size
    except OSError:
        return False


@dataclass(frozen=True)
class PhoneConfig:
    extension: str
    password: str
    server: str = "127.0.0.1:5060"  # the hotline's public SIP address (Kamailio)
    port: int = 0  # local SIP port; 0: any free one
    rtp_port: int = 0
    wav_in: Path | None = None
    wav_out: Path | None = None
    auto_answer: bool = True
    register: bool = True  # False: take calls sent straight to `port` (no registrar)


def make_endpoint(port: int, user_agent: str = "") -> Any:
    """A started pjsua2 Endpoint for one phone: one thread, 8 kHz, null sound device, UDP on `port`."""
    ep = pj.Endpoint()
    ep.libCreate()
    ep_cfg = pj.EpConfig()
    ep_cfg.uaConfig.threadCnt = 0
    ep_cfg.uaConfig.mainThreadOnly = True
    if user_agent:
        ep_cfg.uaConfig.userAgent = user_agent
    med = ep_cfg.medConfig
    med.clockRate = med.sndClockRate = RATE
    med.noVad = True
    med.hasIoqueue = False
    med.threadCnt = 0
    ep_cfg.logConfig.level = ep_cfg.logConfig.consoleLevel = 1
    ep.libInit(ep_cfg)
    # The wheel has no sound devices: the null device clocks the bridge (a headset is a port).
    ep.audDevManager().setNullDev()
    transport = pj.TransportConfig()
    transport.port = port
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    ep.libStart()
    return ep


class AudioCall(pj.Call):  # type: ignore[misc]
    """A phone's call: tells its subclass of the answer, the end, and its audio (once it flows)."""

    def __init__(self, account: Any, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.audio: Any = None

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.on_confirmed()
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.on_disconnected(int(info.lastStatusCode))

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()  # kept: its media list is freed with it
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                if self.audio is None:
                    self.audio = self.getAudioMedia(media.index)
                    self.on_media()
                return

    def on_confirmed(self) -> None:
        pass

    def on_disconnected(self, status_code: int) -> None:
        pass

    def on_media(self) -> None:
        pass


class PhoneCall(AudioCall):
    def __init__(self, phone: Softphone, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(phone.account, call_id)
        self.phone = phone

    def on_confirmed(self) -> None:
        self.phone.say("answered")

    def on_disconnected(self, status_code: int) -> None:
        self.phone.ended(self, status_code)

    def on_media(self) -> None:
        self.phone.media_up(self)


class PhoneAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: Softphone) -> None:
        super().__init__()
        self.phone = phone

    def onRegState(self, prm: Any) -> None:
        active = self.getInfo().regIsActive
        self.phone.say("registered" if active else "unregistered", prm.code)

    def onIncomingCall(self, prm: Any) -> None:
        self.phone.incoming(prm.callId)


class Softphone:
    """One seat's phone; `run()` until `quit` (or stdin closes, or `stop()`)."""

    def __init__(self, config: PhoneConfig, out: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._out = out or (lambda line: print(line, flush=True))
        self.commands: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.call: PhoneCall | None = None
        self._ended: list[PhoneCall] = []
        self._media: list[Any] = []  # players, recorders, the headset port of the current call
        self._recording: Path | None = None
        self._spent: list[tuple[float, list[Any], Path | None]] = []  # ended calls' media, by deadline
        self._closing: list[tuple[float, Path]] = []  # recordings whose last header is not written yet
        self._calls = 0
        self.headset: Headset | None = None
        self.ep: Any = None
        self.account: PhoneAccount | None = None

    def say(self, *words: object) -> None:
        self._out(" ".join(str(w) for w in words))

    # Lifecycle (the pjsua2 thread) ---------------------------------------------------------------
    def start(self) -> None:
        cfg = self.config
        self.ep = make_endpoint(cfg.port, "hotline12345-phone")
        wanted = {name.lower(): 255 - i for i, name in enumerate(CODECS)}
        for codec in self.ep.codecEnum2():
            self.ep.codecSetPriority(codec.codecId, wanted.get(codec.codecId.rsplit("/", 1)[0].lower(), 0))
        if cfg.wav_in is None and cfg.wav_out is None:
            self.headset = Headset()  # fails here, at start, if there is no sound device
        acc = pj.AccountConfig()
        server_host = cfg.server.rsplit(":", 1)[0] if cfg.server.count(":") == 1 else cfg.server
        acc.idUri = f"sip:{cfg.extension}@{server_host}"
        if cfg.register:
            acc.regConfig.registrarUri = f"sip:{cfg.server}"
            acc.regConfig.timeoutSec = 300
            acc.regConfig.retryIntervalSec = 10
            acc.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", cfg.extension, 0, cfg.password))
        acc.mediaConfig.transportConfig.port = cfg.rtp_port
        self.account = PhoneAccount(self)
        self.account.create(acc, True)

    def run(self) -> int:
        """Start, follow stdin's commands until `quit`, end cleanly; 0 when it stopped as asked."""
        self.start()
        threading.Thread(target=self._read_stdin, daemon=True, name="stdin").start()
        self.say("ready")
        try:
            running = True
            while running:
                # Idle, a phone waits longer: stdin commands and registration refreshes can.
                busy = self.call is not None or self._spent or self._closing
                self.ep.libHandleEvents(20 if busy else 200)
                self._ended.clear()  # their DISCONNECTED callbacks have returned: release them
                self._release_spent()
                while running:
                    try:
                        line = self.commands.get_nowait()
                    except queue.Empty:
                        break
                    running = self.command(line)
        finally:
            self.shutdown()
        return 0

    def stop(self) -> None:
        self.commands.put("quit")

    def _read_stdin(self) -> None:
        for line in sys.stdin:
            self.commands.put(line)
        self.commands.put("quit")

    def shutdown(self) -> None:
        if self.ep is None:
            return
        if self.call is not None:
            try:
                self.call.hangup(pj.CallOpParam(True))
            except pj.Error:
                pass
        for _ in range(50):  # the BYE gets a second at most
            if self.call is None:
                break
            self.ep.libHandleEvents(20)
        self._retire()
        deadline = time.monotonic() + RELEASE_DELAY_S + CLOSE_WAIT_S
        while (self._spent or self._closing) and time.monotonic() < deadline:
            self.ep.libHandleEvents(20)
            self._release_spent()
        self._release_spent(everything=True)
        self.call = None
        self._ended.clear()
        if self.account is not None:
            try:
                self.account.shutdown()  # unregisters
            except pj.Error:
                pass
            self.account = None
        if self.headset is not None:
            self.headset.close()
        self.ep.libDestroy()
        self.ep = None

    # Commands ------------------------------------------------------------------------------------
    def command(self, line: str) -> bool:
        verb, _, arg = line.strip().partition(" ")
        try:
            if verb == "answer" and self.call is not None:
                prm = pj.CallOpParam(True)
                prm.statusCode = 200
                self.call.answer(prm)
            elif verb == "hangup" and self.call is not None:
                self.call.hangup(pj.CallOpParam(True))
            elif verb == "dial" and arg and self.call is None:
                self.call = PhoneCall(self)
                self.call.makeCall(arg, pj.CallOpParam(True))
            elif verb == "quit":
                return False
            elif verb:
                self.say("error", f"cannot {line.strip()!r} now")
        except pj.Error as exc:
            self.say("error", exc.reason)
        return True

    # Calls ---------------------------------------------------------------------------------------
    def incoming(self, call_id: int) -> None:
        call = PhoneCall(self, call_id)
        prm = pj.CallOpParam(True)
        if self.call is not None:
            prm.statusCode = 486  # one call at a time, like a desk phone
            call.hangup(prm)
            self._ended.append(call)
            return
        self.call = call
        self.say("incoming", call.getInfo().remoteUri)
        prm.statusCode = 200 if self.config.auto_answer else 180
        call.answer(prm)

    def media_up(self, call: PhoneCall) -> None:
        if call is not self.call:
            return
        # The null device is the bridge's clock; it runs only while something is connected to it.
        call.audio.startTransmit(self.ep.audDevManager().getPlaybackDevMedia())
        cfg = self.config
        self._calls += 1
        if cfg.wav_in is not None:
            player = pj.AudioMediaPlayer()
            player.createPlayer(str(cfg.wav_in))  # looped: a voice for as long as the call lasts
            player.startTransmit(call.audio)
            self._media.append(player)
        if cfg.wav_out is not None:
            path = cfg.wav_out
            if self._calls > 1:
                path = path.with_name(f"{path.stem}-{self._calls}{path.suffix}")
            recorder = pj.AudioMediaRecorder()
            recorder.createRecorder(str(path))
            call.audio.startTransmit(recorder)
            self._media.append(recorder)
            self._recording = path
        if self.headset is not None:
            fmt = pj.MediaFormatAudio()
            fmt.init(pj.PJMEDIA_FORMAT_PCM, RATE, 1, FRAME_MS * 1000, 16, 0, 0)
            self.headset.start()
            port = HeadsetPort(self.headset)
            port.createPort(f"headset-{self._calls}", fmt)
            port.startTransmit(call.audio)
            call.audio.startTransmit(port)
            self._media.append(port)

    def ended(self, call: PhoneCall, status_code: int) -> None:
        if call is not self.call:
            return
        self.say("ended", status_code)
        if self.headset is not None:
            self.headset.stop()
        self._retire()
        # Released after this callback returns (the main loop clears it): Call::~Call() rules.
        self._ended.append(call)
        self.call = None

    def _retire(self) -> None:
        if self._media:
            self._spent.append((time.monotonic() + RELEASE_DELAY_S, list(self._media), self._recording))
        self._media.clear()
        self._recording = None

    def _release_spent(self, everything: bool = False) -> None:
        """Destroy ended calls' players and recorders; a recorder's file is complete after that."""
        now = time.monotonic()
        while self._spent and (everything or self._spent[0][0] <= now):
            _due, media, recorded = self._spent.pop(0)
            media.clear()  # the last references: pjsua destroys them here
            if recorded is not None:
                self._closing.append((now + CLOSE_WAIT_S, recorded))
        # The bridge closes a destroyed recorder's file at its next tick, on its own thread.
        for item in list(self._closing):
            deadline, path = item
            if everything or now >= deadline or wav_complete(path):
                self._closing.remove(item)
                self.say("closed", path)
