"""A pjsua2 test phone in its own process, driven by the SIP tests over stdin and stdout.

    python tests/ivr/phone.py --port P --rtp-port R --user 13800138000 --record heard.wav
    python tests/ivr/phone.py ... --user 8001 --registrar sip:127.0.0.1:5060 --password PW   (a seat)

Commands, one per line on stdin:
    call <uri>            place the call
    dtmf <digits>         RFC 2833 (`call.dialDtmf`)
    info <digits>         SIP INFO (application/dtmf-relay)
    play <file.wav>       speak: play a WAV file into the call (its voice)
    hangup                end the call
    answer                answer the ringing call
    autoanswer on|off     answer incoming calls at once (the default) or let them ring
    unregister            end the registration (a seat phone going away)
    quit                  close the recording and exit
Events, one per line on stdout: `ready`, `registered <code>`, `unregistered <code>`,
`incoming <from uri>`, `confirmed`, `media`, `transfer <uri>`, `disconnected <code>`,
`closed <path>` (the recording file is complete), `autoanswer on|off`, `error <text>`. Each call
is recorded to its own file: the first to `--record`, later ones to `<stem>-2.wav`, `<stem>-3.wav`...

A transfer request (REFER) is accepted (pjsua places the new call) or, with `--refuse-transfer`,
declined with 603. Everything pjsua2 does runs on the main thread; stdin is read by a thread
that hands the commands over through a queue.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
from typing import Any

import pjsua2 as pj

from ivr.sip.softphone import AudioCall, make_endpoint


def say(*words: object) -> None:
    print(*words, flush=True)


class PhoneCall(AudioCall):
    def __init__(self, phone: Phone, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(phone.account, call_id)
        self.phone = phone

    def on_confirmed(self) -> None:
        say("confirmed")

    def on_disconnected(self, status_code: int) -> None:
        say("disconnected", status_code)
        self.phone.ended(self)

    def on_media(self) -> None:
        self.phone.media_up(self)

    def onCallTransferRequest(self, prm: Any) -> None:
        say("transfer", prm.dstUri)
        if self.phone.refuse_transfer:
            prm.statusCode = 603
        else:
            new = PhoneCall(self.phone)
            self.phone.calls.append(new)
            prm.newCall = new


class PhoneAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    def onRegState(self, prm: Any) -> None:
        say("registered" if self.getInfo().regIsActive else "unregistered", prm.code)

    def onIncomingCall(self, prm: Any) -> None:
        self.phone.incoming(prm.callId)


class Phone:
    def __init__(self, args: argparse.Namespace) -> None:
        self.refuse_transfer = bool(args.refuse_transfer)
        self.record_path: str = args.record
        self.recorded = 0
        self.autoanswer = True
        self.ep = make_endpoint(args.port)  # the same set-up as `hotline phone`
        acc = pj.AccountConfig()
        acc.idUri = f"sip:{args.user}@127.0.0.1:{args.port}"
        if args.registrar:
            acc.idUri = f"sip:{args.user}@{args.registrar.split(':', 1)[1].split(':')[0]}"
            acc.regConfig.registrarUri = args.registrar
            acc.regConfig.timeoutSec = 60
            acc.regConfig.retryIntervalSec = 2
            acc.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
        acc.mediaConfig.transportConfig.port = args.rtp_port
        acc.mediaConfig.transportConfig.portRange = 10
        self.account = PhoneAccount(self)
        self.account.create(acc, True)
        self.calls: list[PhoneCall] = []
        self.call: PhoneCall | None = None
        self.recorder: Any = None
        self.recording = ""
        self.players: list[Any] = []

    def incoming(self, call_id: int) -> None:
        call = PhoneCall(self, call_id)
        self.calls.append(call)
        if self.call is not None and self.call.isActive():
            call.hangup(pj.CallOpParam(True))  # busy: one call at a time, like a desk phone
            return
        self.call = call
        say("incoming", call.getInfo().remoteUri)
        prm = pj.CallOpParam(True)
        prm.statusCode = 200 if self.autoanswer else 180
        call.answer(prm)

    def media_up(self, call: PhoneCall) -> None:
        say("media")
        # The null sound device clocks the bridge only while something is connected to it.
        call.audio.startTransmit(self.ep.audDevManager().getPlaybackDevMedia())
        if call is self.call and self.recorder is None and self.record_path:
            self.recorded += 1
            path = self.record_path
            if self.recorded > 1:
                path = path.removesuffix(".wav") + f"-{self.recorded}.wav"
            self.recorder = pj.AudioMediaRecorder()
            self.recorder.createRecorder(path)
            self.recording = path
            call.audio.startTransmit(self.recorder)

    def ended(self, call: PhoneCall) -> None:
        if call is self.call:
            self.close_recording()

    def close_recording(self) -> None:
        if self.recorder is not None:
            self.recorder = None  # destroying the recorder writes the final WAV header
            say("closed", self.recording)

    def command(self, line: str) -> bool:
        verb, _, arg = line.strip().partition(" ")
        try:
            if verb == "call":
                self.call = PhoneCall(self)
                self.calls.append(self.call)
                prm = pj.CallOpParam(True)
                self.call.makeCall(arg, prm)
            elif verb == "dtmf" and self.call is not None:
                self.call.dialDtmf(arg)
            elif verb == "info" and self.call is not None:
                for digit in arg:
                    prm = pj.CallSendDtmfParam()
                    prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
                    prm.digits = digit
                    self.call.sendDtmf(prm)
            elif verb == "play" and self.call is not None and self.call.audio is not None:
                player = pj.AudioMediaPlayer()
                player.createPlayer(arg, pj.PJMEDIA_FILE_NO_LOOP)
                player.startTransmit(self.call.audio)
                self.players.append(player)
            elif verb == "hangup" and self.call is not None:
                self.call.hangup(pj.CallOpParam(True))
            elif verb == "answer" and self.call is not None:
                prm = pj.CallOpParam(True)
                prm.statusCode = 200
                self.call.answer(prm)
            elif verb == "autoanswer":
                self.autoanswer = arg == "on"
                say("autoanswer", arg)  # so a test knows it applies before the next call comes
            elif verb == "unregister":
                self.account.setRegistration(False)
            elif verb == "quit":
                return False
            else:
                say("error", f"cannot {line.strip()!r} now")
        except pj.Error as exc:
            say("error", exc.reason)
        return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rtp-port", type=int, required=True)
    parser.add_argument("--user", default="13800138000")
    parser.add_argument("--record", default="")
    parser.add_argument("--refuse-transfer", action="store_true")
    parser.add_argument("--registrar", default="", help="register here, e.g. sip:127.0.0.1:5060")
    parser.add_argument("--password", default="")
    args = parser.parse_args()
    phone = Phone(args)
    commands: queue.SimpleQueue[str] = queue.SimpleQueue()

    def read() -> None:
        for line in sys.stdin:
            commands.put(line)
        commands.put("quit")

    threading.Thread(target=read, daemon=True).start()
    say("ready")
    running = True
    while running:
        phone.ep.libHandleEvents(10)
        while running:
            try:
                line = commands.get_nowait()
            except queue.Empty:
                break
            running = phone.command(line)
    for call in phone.calls:
        try:
            if call.isActive():
                call.hangup(pj.CallOpParam(True))
        except pj.Error:
            pass
    for _ in range(30):
        phone.ep.libHandleEvents(10)
    phone.close_recording()
    phone.players.clear()
    sys.stdout.flush()
    # Skip pjsua2's destructors: a test phone needs no orderly teardown, and a late Call
    # destructor after libDestroy() aborts the process (TELEPHONY.md).
    os._exit(0)


if __name__ == "__main__":
    main()
