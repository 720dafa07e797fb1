"""The pjsua2 edge: the only package that imports pjsua2; it owns the Endpoint and every wrapper."""

from __future__ import annotations

from ivr.sip.edge import DialListener, EdgeConfig, LegListener, SipEdge, SipError
from ivr.sip.leg import SipLeg

__all__ = ["DialListener", "EdgeConfig", "LegListener", "SipEdge", "SipError", "SipLeg"]
