"""One SIP worker process (`hotline sip-worker --index N`): wires its parts and runs the pjsua2 loop.

Threads: this (main) thread owns pjsua2 and all call handling; the reporter thread talks to Redis.
The loop waits in `libHandleEvents` for up to a second while no call is up, so an idle pool of 16
workers costs a fraction of a percent of a core; with calls up it returns every 20 ms at most,
so pjsua2's deferred jobs (player end-of-file and the like) run promptly. SIGTERM/SIGINT
interrupt the wait; the worker hangs up its calls, destroys the library and exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from hotline.settings import Settings
from ivr import prompts
from ivr.calls import CallController
from ivr.legs import LegTable
from ivr.reporter import Reporter
from ivr.sip import EdgeConfig, SipEdge, SipError

log = logging.getLogger(__name__)

IDLE_POLL_MS = 1000
BUSY_POLL_MS = 20
GREETING = "greeting"
# pjsua log levels: 1 errors, 2 warnings, 3 info, 4 debug (with every SIP message).
_PJ_LOG_LEVELS = {"DEBUG": 4, "INFO": 2, "WARNING": 2, "ERROR": 1}


def worker_name(index: int) -> str:
    return f"sip-worker-{index}"


def edge_config(settings: Settings, index: int, *, public: bool = False) -> EdgeConfig:
    """Worker `index`'s SIP port (or the public one) and its own slice of the RTP port range."""
    return EdgeConfig(
        host=settings.sip_host,
        sip_port=settings.sip_port if public else settings.sip_worker_base_port + index,
        rtp_port=settings.rtp_base_port + index * settings.rtp_ports_per_worker,
        rtp_port_range=settings.rtp_ports_per_worker,
        max_calls=settings.sip_legs_per_worker,
        log_level=_PJ_LOG_LEVELS[settings.log_level],
    )


def greeting_file(settings: Settings, lang: str = "zh") -> Path | None:
    return prompts.find(GREETING, lang=lang, root=settings.prompts_dir)


def run(settings: Settings, index: int, *, public: bool = False) -> int:
    """Run SIP worker `index` until SIGTERM/SIGINT; 0 after a clean stop, 1 if SIP cannot start."""
    _configure_logging(settings)
    name = worker_name(index)
    config = edge_config(settings, index, public=public)
    if config.sip_port > 65535 or config.rtp_port + config.rtp_port_range > 65536:
        log.error(
            "%s: ports out of range (sip %d, rtp %d+%d)",
            name,
            config.sip_port,
            config.rtp_port,
            config.rtp_port_range,
        )
        return 1
    legs = LegTable(settings.sip_legs_per_worker)
    address = f"{settings.sip_host}:{config.sip_port}"
    pid = os.getpid()

    def status() -> dict[str, Any]:
        # Read from the reporter thread: two ints, consistent enough for a 1-s heartbeat.
        return {"address": address, "legs": len(legs), "free_legs": legs.free, "pid": pid}

    reporter = Reporter(settings.effective_redis_url, "sip", name, status)
    greeting = greeting_file(settings)
    if greeting is None:
        log.info("%s: no greeting prompt found; calls are answered with silence", name)
    edge = SipEdge(config, CallController(name, legs, reporter, greeting))

    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Python runs this on the main thread once the current poll returns; the signal normally
        # interrupts that poll (Linux delivers it to the main thread), else it ends within 1 s.
        nonlocal stopping
        stopping = True
        log.info("%s: %s received, stopping", name, signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            edge.start()
        except SipError as exc:
            log.error("%s: cannot start: %s", name, exc)
            return 1
        reporter.start()
        log.info("%s ready on %s (%s)", name, address, "public" if public else "behind kamailio")
        try:
            while not stopping:
                edge.poll(BUSY_POLL_MS if edge.calls_up else IDLE_POLL_MS)
        finally:
            # Also after an unexpected error: wrappers must go before libDestroy(), not at exit.
            if edge.calls_up:
                log.info("%s: hanging up %d call(s)", name, edge.calls_up)
            edge.shutdown()
    finally:
        reporter.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("%s stopped", name)
    return 0


def _configure_logging(settings: Settings) -> None:
    # The CLI may have set up logging already; a worker started some other way still logs.
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root.setLevel(settings.log_level)
