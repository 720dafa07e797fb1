"""pjsua2's wrapper classes with their camelCase callbacks, forwarded to the edge that owns them.

Players and recorders are used as pjsua2 makes them, not subclassed: a Python subclass of a
SWIG director class gets its callbacks (a player's `onEof2`) upcalled on pjmedia's clock thread,
even while the wrapper is being destroyed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

if TYPE_CHECKING:
    from ivr.sip.edge import SipEdge
    from ivr.sip.leg import SipLeg

log = logging.getLogger(__name__)

DTMF_METHODS = {pj.PJSUA_DTMF_METHOD_RFC2833: "rfc2833", pj.PJSUA_DTMF_METHOD_SIP_INFO: "sip_info"}


def op(status_code: int, reason: str = "", headers: dict[str, str] | None = None) -> Any:
    prm = pj.CallOpParam()
    prm.statusCode = status_code
    if reason:
        prm.reason = reason
    for name, value in (headers or {}).items():
        header = pj.SipHeader()
        header.hName = name
        header.hValue = value
        prm.txOption.headers.append(header)
    return prm


class Call(pj.Call):  # type: ignore[misc]
    """One call: knows its SipLeg, its audio, the player that speaks and the recorders that listen."""

    def __init__(self, edge: SipEdge, account: Account, call_id: int) -> None:
        super().__init__(account, call_id)
        self.edge = edge
        self.leg: SipLeg | None = None
        # An outgoing call's own listener (ivr.outbound); incoming calls report to the edge's.
        self.listener: Any = None
        self.audio: Any = None
        self.players: list[Any] = []  # pj.AudioMediaPlayer
        self.recorders: dict[str, Any] = {}  # pj.AudioMediaRecorder, by file path

    def onCallState(self, prm: Any) -> None:
        try:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.edge._call_disconnected(self, info.lastStatusCode, info.lastReason)
            elif info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                self.edge._call_confirmed(self)
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

    def onDtmfDigit(self, prm: Any) -> None:
        # RFC 2833 events and SIP INFO (application/dtmf-relay) both arrive here (seen with 2.15.1).
        try:
            self.edge._dtmf(self, str(prm.digit), DTMF_METHODS.get(prm.method, "other"))
        except Exception:
            log.exception("onDtmfDigit failed")

    def onCallTransferStatus(self, prm: Any) -> None:
        try:
            final = bool(prm.finalNotify) or prm.statusCode >= 200
            self.edge._transfer_status(self, int(prm.statusCode), str(prm.reason), final)
            prm.cont = not final  # no further NOTIFYs wanted once the outcome is known
        except Exception:
            log.exception("onCallTransferStatus failed")


class Account(pj.Account):  # type: ignore[misc]
    """The one account: receives every incoming INVITE, whatever user it is for."""

    def __init__(self, edge: SipEdge) -> None:
        super().__init__()
        self.edge = edge

    def onIncomingCall(self, prm: Any) -> None:
        try:
            self.edge._incoming(self, prm.callId, str(prm.rdata.wholeMsg))
        except Exception:
            log.exception("onIncomingCall failed")
