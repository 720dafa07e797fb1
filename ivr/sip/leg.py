"""The listener's handle on one call: answer, hang up, play, record, transfer; pjsua2 thread only.

A `SipLeg` holds only a weak reference to its pjsua2 wrapper, so keeping a leg around after its
call ended is harmless: every operation then returns False and does nothing.
"""

from __future__ import annotations

import logging
import re
import uuid
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

from ivr.sip.wrappers import op

if TYPE_CHECKING:
    from ivr.sip.wrappers import Call

log = logging.getLogger(__name__)

_USER_RE = re.compile(r"<?sips?:([^@;>]+)@")


def header(message: str, name: str, compact: str = "") -> str:
    """The value of the first header `name` (or its compact form) in a raw SIP message, or ""."""
    head = message.split("\r\n\r\n", 1)[0]
    names = {name.lower(), compact.lower()} - {""}
    for line in head.split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in names:
            return value.strip()
    return ""


class SipLeg:
    """One call as the listener sees it; `id` is unique even when pjsua reuses call slots."""

    def __init__(self, call: Call, info: Any, message: str = "") -> None:
        self.id = uuid.uuid4().hex
        self._call = weakref.ref(call)
        self._edge = weakref.ref(call.edge)
        self.sip_call_id: str = info.callIdString
        self.remote_uri: str = info.remoteUri
        self.local_uri: str = info.localUri
        # Set on INVITEs that a transfer produced (RFC 3892): tells a transferred call from a new one.
        self.referred_by = header(message, "Referred-By", "b")
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
        self.answered = self._do("answer", op(200))
        return self.answered

    def reject(self, status_code: int, reason: str) -> bool:
        return self._do("hangup", op(status_code, reason))

    def hangup(self) -> bool:
        """BYE after the answer; before it, 503 (Kamailio then tries another worker)."""
        return self._do("hangup", op(200 if self.answered else 503))

    def transfer(self, uri: str, referred_by: str = "") -> bool:
        """A blind transfer: REFER the caller to `uri`; the outcome comes as transfer status."""
        headers = {"Referred-By": referred_by} if referred_by else {}
        return self._do("xfer", uri, op(0, headers=headers))

    def _do(self, action: str, *args: Any) -> bool:
        call = self._call()
        if call is None:
            return False
        try:
            getattr(call, action)(*args)
        except pj.Error as exc:
            log.warning("%s on %s failed: %s", action, self.sip_call_id, exc.reason)
            return False
        return True

    # Media -----------------------------------------------------------------------------------
    def play(self, path: Path) -> bool:
        """Play a WAV file to the caller once, instead of whatever was playing; False if it cannot.

        One prompt at a time: the IVR never mixes two, and a finished player is released here
        rather than piling up for the length of the call.
        """
        call = self._call()
        if call is None or call.audio is None:
            return False
        self.stop_playback()
        player = pj.AudioMediaPlayer()
        try:
            player.createPlayer(str(path), pj.PJMEDIA_FILE_NO_LOOP)
            player.startTransmit(call.audio)
        except pj.Error as exc:
            log.warning("cannot play %s to %s: %s", path, self.sip_call_id, exc.reason)
            return False
        call.players.append(player)
        call.edge._track("players", player)
        return True

    def stop_playback(self) -> None:
        call = self._call()
        if call is None:
            return
        for player in call.players:
            try:
                player.stopTransmit(call.audio)
            except pj.Error:
                pass  # finished or never connected
        call.edge._retire(call.players)
        call.players.clear()

    def start_recording(self, path: Path) -> bool:
        """Record what the caller sends into a WAV file at the bridge rate (8 kHz, 16-bit)."""
        call = self._call()
        if call is None or call.audio is None or str(path) in call.recorders:
            return False
        recorder = pj.AudioMediaRecorder()
        try:
            recorder.createRecorder(str(path))
            call.audio.startTransmit(recorder)
        except pj.Error as exc:
            log.warning("cannot record %s to %s: %s", self.sip_call_id, path, exc.reason)
            return False
        call.recorders[str(path)] = recorder
        call.edge._track("recorders", recorder)
        return True

    def stop_recording(self, path: Path) -> bool:
        """Stop the recorder; False if none was running.

        The file is complete once the recorder is destroyed, about `RELEASE_DELAY_S` later (see
        `ivr.sip.edge`): `ivr.cdr.wait_closed` waits for its final header before it is sealed.
        """
        call = self._call()
        recorder = call.recorders.pop(str(path), None) if call is not None else None
        if call is None or recorder is None:
            return False
        try:
            call.audio.stopTransmit(recorder)
        except pj.Error:
            pass
        call.edge._retire([recorder])

        return True

    @property
    def recording(self) -> list[str]:
        call = self._call()
        return list(call.recorders) if call is not None else []

    def bridge(self, other: SipLeg) -> bool:
        """Connect this call and `other` both ways in the conference bridge (a caller and a seat)."""
        return self.send_to(other) and other.send_to(self)

    def unbridge(self, other: SipLeg) -> None:
        """Undo `bridge`: neither hears the other (a caller on hold)."""
        self.stop_sending_to(other)
        other.stop_sending_to(self)

    def send_to(self, other: SipLeg) -> bool:
        """One way: `other` hears what this call's far end says (a supervisor listening in)."""
        mine, theirs = self._call(), other._call()
        if mine is None or theirs is None or mine.audio is None or theirs.audio is None:
            return False
        try:
            mine.audio.startTransmit(theirs.audio)
        except pj.Error as exc:
            log.warning("cannot connect %s to %s: %s", self.sip_call_id, other.sip_call_id, exc.reason)
            return False
        return True

    def stop_sending_to(self, other: SipLeg) -> None:
        mine, theirs = self._call(), other._call()
        if mine is None or theirs is None or mine.audio is None or theirs.audio is None:
            return
        try:
            mine.audio.stopTransmit(theirs.audio)
        except pj.Error:
            pass  # never connected
