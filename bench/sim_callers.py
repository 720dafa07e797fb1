"""Callers for `bench/simulate_day.py`: one pjsua2 process placing up to four calls at once.

The wheel holds four calls per process (TELEPHONY.md), so the simulation runs several of these.
Each slot has its own calling number (`--numbers`, one per slot), so the hotline's events
(`call.queued`, `call.answered`, which name the caller) tell the driver which slot a call is in.

    python bench/sim_callers.py --port P --rtp-port R --numbers 13900000001,13900000002,...

Commands on stdin, one per line:
    call <slot> <uri>     dial; once audio flows, press 0 (RFC 2833) to ask for a person
    hangup <slot>         give up (the caller's patience ran out)
    quit
Events on stdout: `<slot> confirmed`, `<slot> ended <code>`, `error <text>`. Calls offered to a
caller (the hotline's missed-call callback) are refused with 486: the simulation has no callbacks.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pjsua2 as pj  # noqa: E402

from ivr.sip.softphone import AudioCall, make_endpoint  # noqa: E402

DTMF_DELAY_S = 0.3  # after audio starts: the IVR's media is up by then


def say(*words: object) -> None:
    print(*words, flush=True)


class CallerCall(AudioCall):
    def __init__(self, caller: Callers, slot: int, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(caller.accounts[slot], call_id)
        self.caller, self.slot = caller, slot

    def on_confirmed(self) -> None:
        say(self.slot, "confirmed")

    def on_media(self) -> None:
        # The null sound device clocks the bridge only while something is connected to it.
        self.audio.startTransmit(self.caller.ep.audDevManager().getPlaybackDevMedia())
        self.caller.dtmf_due.append((time.monotonic() + DTMF_DELAY_S, self))

    def on_disconnected(self, status_code: int) -> None:
        self.caller.ended(self, status_code)


class SlotAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, caller: Callers, slot: int) -> None:
        super().__init__()
        self.caller, self.slot = caller, slot

    def onIncomingCall(self, prm: Any) -> None:
        call = CallerCall(self.caller, self.slot, prm.callId)
        op = pj.CallOpParam(True)
        op.statusCode = 486
        call.hangup(op)
        self.caller.released.append(call)


class Callers:
    def __init__(self, port: int, rtp_port: int, numbers: list[str]) -> None:
        self.ep = make_endpoint(port)
        self.accounts: list[SlotAccount] = []
        for slot, number in enumerate(numbers):
            cfg = pj.AccountConfig()
            cfg.idUri = f"sip:{number}@127.0.0.1:{port}"
            cfg.mediaConfig.transportConfig.port = rtp_port + 10 * slot
            cfg.mediaConfig.transportConfig.portRange = 10
            account = SlotAccount(self, slot)
            account.create(cfg, slot == 0)
            self.accounts.append(account)
        self.calls: dict[int, CallerCall] = {}
        self.released: list[CallerCall] = []  # ended calls, dropped after their callback returned
        self.dtmf_due: list[tuple[float, CallerCall]] = []

    def ended(self, call: CallerCall, status_code: int) -> None:
        if self.calls.get(call.slot) is call:
            del self.calls[call.slot]
            say(call.slot, "ended", status_code)
        self.released.append(call)

    def command(self, line: str) -> bool:
        verb, *args = line.split()
        try:
            if verb == "call":
                slot = int(args[0])
                if slot in self.calls:
                    say("error", f"slot {slot} is busy")
                    return True
                call = CallerCall(self, slot)
                self.calls[slot] = call
                call.makeCall(args[1], pj.CallOpParam(True))
            elif verb == "hangup":
                found = self.calls.get(int(args[0]))
                if found is not None:
                    found.hangup(pj.CallOpParam(True))
            elif verb == "quit":
                return False
        except pj.Error as exc:
            say("error", exc.reason)
            if verb == "call":
                failed = self.calls.pop(int(args[0]), None)
                if failed is not None:
                    self.released.append(failed)
                say(args[0], "ended", 0)
        return True

    def press_due(self) -> None:
        now = time.monotonic()
        for item in [d for d in self.dtmf_due if d[0] <= now]:
            self.dtmf_due.remove(item)
            call = item[1]
            if self.calls.get(call.slot) is call:
                try:
                    call.dialDtmf("0")
                except pj.Error as exc:
                    say("error", exc.reason)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rtp-port", type=int, required=True)
    parser.add_argument("--numbers", required=True, help="one calling number per slot, comma-separated")
    args = parser.parse_args()
    callers = Callers(args.port, args.rtp_port, args.numbers.split(","))
    commands: queue.SimpleQueue[str] = queue.SimpleQueue()

    def read() -> None:
        for line in sys.stdin:
            commands.put(line)
        commands.put("quit")

    threading.Thread(target=read, daemon=True).start()
    say("ready")
    running = True
    while running:
        callers.ep.libHandleEvents(20 if callers.calls else 100)
        callers.released.clear()  # their callbacks have returned (Call::~Call() rules, TELEPHONY.md)
        callers.press_due()
        while running:
            try:
                line = commands.get_nowait()
            except queue.Empty:
                break
            running = callers.command(line)
    for call in list(callers.calls.values()):
        try:
            call.hangup(pj.CallOpParam(True))
        except pj.Error:
            pass
    for _ in range(25):
        callers.ep.libHandleEvents(20)
    sys.stdout.flush()
    os._exit(0)  # no orderly pjsua2 teardown needed (and a late Call destructor would abort)


if __name__ == "__main__":
    main()
