"""The softswitch: pjsua2 SIP workers behind Kamailio, call legs, media, the IVR.

Rules of this package: only `ivr.sip` imports pjsua2, and everything it owns runs on the one
thread of its worker process, which never blocks (Redis, SQL, files and speech run elsewhere and
hand results back through `SipEdge.post`).
"""
