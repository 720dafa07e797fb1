"""One SIP worker process (`hotline sip-worker --index N`): wires its parts and runs the pjsua2 loop.

Threads: this (main) thread owns pjsua2 and all call handling; the reporter thread talks to Redis
for events and heartbeats; the ACD thread dispatches for this worker's waiting callers; the control
thread takes the desk's call controls (`ivr.call_control`) and the admin page's "menu changed"
(`MenuReloader`, which reads the file on a thread of its own); `Offload` has one thread for SQL and
one for Redis (the ACD, RQ); the speech client has its socket threads. The loop waits in
`libHandleEvents` for up to a second while no call is up, so an idle pool of 16 workers costs a
fraction of a percent of a core; with calls up it returns every 20 ms at most (sooner when a timer
is due). SIGTERM/SIGINT interrupt the wait; the worker hangs up its calls, writes their records,
destroys the library and exits 0.

At start it closes what its previous run left open if it was killed: CDRs still in progress,
voicemails being recorded (kept, as tickets), recordings (sealed), queue entries (removed).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

from hotline.db import make_engine, make_session_factory, utcnow
from hotline.settings import IVR_MENU_RELOAD_CHANNEL, Settings
from ivr import cdr, outbound, prompts
from ivr.call_control import CallControls, ControlListener
from ivr.calls import CallController
from ivr.context import IvrContext
from ivr.dialer import Dialer
from ivr.legs import LegTable
from ivr.live_transcript import LiveTranscripts
from ivr.menu import DEFAULT_MENU, Menu, MenuError, load_menu
from ivr.offload import Offload
from ivr.playback import PromptBook
from ivr.reporter import Reporter
from ivr.seat_link import SeatLink, SeatTimes
from ivr.sip import EdgeConfig, SipEdge, SipError
from ivr.speech_client import SpeechClient, socket_path
from ivr.tones import ensure_tones

log = logging.getLogger(__name__)

IDLE_POLL_MS = 1000
BUSY_POLL_MS = 20
GREETING = "greeting"
# pjsua log levels: 1 errors, 2 warnings, 3 info, 4 debug (with every SIP message).
_PJ_LOG_LEVELS = {"DEBUG": 4, "INFO": 2, "WARNING": 2, "ERROR": 1}


def worker_name(index: int) -> str:
    return f"sip-worker-{index}"


def record_name(index: int) -> str:
    """The worker as CDRs name it: unique across softswitch hosts that share one database."""
    return f"{worker_name(index)}@{socket.gethostname()}"


def edge_config(settings: Settings, index: int, *, public: bool = False) -> EdgeConfig:
    """Worker `index`'s SIP port (or the public one) and its own slice of the RTP port range."""
    return EdgeConfig(
        host=settings.sip_host,
        sip_port=settings.sip_port if public else settings.sip_worker_base_port + index,
        rtp_port=settings.rtp_base_port + index * settings.rtp_ports_per_worker,
        rtp_port_range=settings.rtp_ports_per_worker,
        max_calls=settings.sip_legs_per_worker,
        codecs=settings.sip_codecs,
        log_level=_PJ_LOG_LEVELS[settings.log_level],
    )


def menu_path(settings: Settings) -> Path:
    """`ivr_menu` if set, else the menu saved at /admin/menu if any, else the shipped default."""
    return settings.ivr_menu_file() or DEFAULT_MENU


def load_configured_menu(settings: Settings) -> Menu:
    """The configured menu, or the shipped default when it is broken: callers are never turned away."""
    path = menu_path(settings)
    try:
        return load_menu(path)
    except (OSError, MenuError) as exc:
        log.error("IVR menu %s is unusable, using the default menu instead:\n%s", path, exc)
        return load_menu(DEFAULT_MENU)


class MenuReloader:
    """Loads the menu again when the admin page says it changed (`IVR_MENU_RELOAD_CHANNEL`).

    `wake` runs on the pjsua2 thread (the control thread posts it there, also each time it
    subscribes, so a message missed while Redis was away is made up for); the file is read and
    parsed on a thread of its own and only the swap of `ctx.menu` happens on the pjsua2 thread.
    A call's `MenuRun` holds the menu it started with: new calls get the new menu, calls in
    progress keep theirs. A broken file keeps the menu that runs (never a worse one mid-day).
    """

    def __init__(
        self, settings: Settings, ctx: IvrContext, post: Callable[[Callable[[], None]], None]
    ) -> None:
        self.settings = settings
        self.ctx = ctx
        self.post = post
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"{ctx.worker}-menu")

    def wake(self) -> None:
        try:
            self._pool.submit(self._load)
        except RuntimeError:  # stopping
            pass

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _load(self) -> None:
        path = menu_path(self.settings)
        try:
            menu = load_menu(path)
        except (OSError, MenuError) as exc:
            log.error(
                "%s: IVR menu %s is unusable, keeping the current menu:\n%s", self.ctx.worker, path, exc
            )
            return
        if menu != self.ctx.menu:  # the first wake, at subscription, usually finds it unchanged
            self.post(functools.partial(self._apply, menu))

    def _apply(self, menu: Menu) -> None:
        self.ctx.menu = menu
        log.info("%s: IVR menu reloaded from %s (new calls use it)", self.ctx.worker, menu.path)


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
    started_at = utcnow()
    legs = LegTable(settings.sip_legs_per_worker)
    address = f"{settings.sip_host}:{config.sip_port}"
    pid = os.getpid()
    started = time.time()
    prompt_folder = (settings.prompts_dir or prompts.default_prompts_dir()) / "audio" / prompts.DEFAULT_LANG
    book = PromptBook(prompt_folder, extra=ensure_tones(settings.run_dir / "tones"))
    if GREETING not in book:
        log.info("%s: no greeting prompt in %s; run `hotline prompts render`", name, prompt_folder)
    engine = make_engine(settings.effective_database_url)
    edge: SipEdge | None = None

    def status() -> dict[str, Any]:
        # Read from the reporter thread: small ints, consistent enough for a 1-s heartbeat.
        wrappers = edge.wrapper_counts() if edge is not None else {}
        return {
            "address": address,
            "legs": len(legs),
            "free_legs": legs.free,
            "pid": pid,
            "started": started,  # the registrar ends calls a previous run of this worker left
            **wrappers,
        }

    # The heartbeat is named like the CDRs (sip-worker-N@host): softswitch hosts sharing one Redis
    # each have a sip-worker-0.
    reporter = Reporter(settings.effective_redis_url, "sip", record_name(index), status)
    ctx = IvrContext(
        worker=name,
        record_name=record_name(index),
        menu=load_configured_menu(settings),
        book=book,
        events=reporter,
        offload=Offload(lambda job: edge.post(job) if edge is not None else None, name),
        factory=make_session_factory(engine),
        recordings_root=settings.recordings_dir.resolve(),
        redis_url=settings.effective_redis_url,
        edge_address=f"{settings.sip_host}:{settings.sip_port}",
    )
    edge = SipEdge(config, CallController(name, legs, reporter, ctx))
    ctx.scheduler = edge
    times = SeatTimes.from_settings(settings)
    # Callers are tagged with the record name: unique across softswitch hosts sharing one Redis.
    ctx.seat_link = SeatLink(ctx.record_name, ctx.redis_url, edge.post, ctx.factory, times, edge, legs)
    dialer = Dialer(ctx, edge, legs)  # outbound calls asked for over Redis (ivr.outbound)
    # The desk's call controls (hold, transfers, survey, listen...) on this worker's channel.
    ctx.controls = CallControls(ctx, edge, legs, settings.emergency_numbers)
    menus = MenuReloader(settings, ctx, edge.post)
    wakes = {outbound.WAKE: dialer.wake, IVR_MENU_RELOAD_CHANNEL: menus.wake}
    controls = ControlListener(ctx.record_name, ctx.redis_url, edge.post, ctx.controls.handle, wakes)
    if settings.vosk_model is not None:
        # The model lives in the host's speech service, not in each of the 16 workers.
        ctx.speech = SpeechClient(socket_path(settings), edge.post, name=name)
        ctx.transcripts = LiveTranscripts(ctx)
    _recover(ctx, started_at)

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
        ctx.seat_link.start()
        controls.start()
        dialer.start()
        log.info("%s ready on %s (%s)", name, address, "public" if public else "behind kamailio")
        try:
            while not stopping:
                edge.poll(BUSY_POLL_MS if edge.calls_up else IDLE_POLL_MS)
        finally:
            # Also after an unexpected error: wrappers must go before libDestroy(), not at exit.
            ctx.stopping = True
            if edge.calls_up:
                log.info("%s: hanging up %d call(s)", name, edge.calls_up)
            edge.shutdown()
    finally:
        ctx.seat_link.stop()
        controls.stop()
        menus.stop()
        ctx.offload.shutdown()  # the records of the calls that just ended
        if ctx.speech is not None:
            ctx.speech.close()
        reporter.stop()
        engine.dispose()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("%s stopped", name)
    return 0


def _recover(ctx: IvrContext, started_at: Any) -> None:
    """Close what this worker's previous run left open (on the SQL and Redis threads)."""

    def work() -> cdr.Recovered:
        return cdr.recover(ctx.factory, ctx.recordings_root, ctx.record_name, started_at)

    def done(found: cdr.Recovered) -> None:
        if found.calls or found.recordings:
            log.warning(
                "%s: closed %d call(s) and %d recording(s) left open by its previous run",
                ctx.worker,
                len(found.calls),
                found.recordings,
            )
        for call_id in found.queued:
            ctx.offload.redis(functools.partial(_leave_queue, ctx, call_id))
        for ticket_id in found.voicemail_tickets:
            ctx.offload.redis(functools.partial(ctx.queue_transcription, ticket_id))

    ctx.offload.sql(work, on_done=done)


def _leave_queue(ctx: IvrContext, call_id: str) -> None:
    ctx.acd().leave(call_id)


def _configure_logging(settings: Settings) -> None:
    # The CLI may have set up logging already; a worker started some other way still logs.
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root.setLevel(settings.log_level)
