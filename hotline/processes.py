"""What `hotline serve` and `hotline softswitch` run, in which order, and how each is checked."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable, Sequence

from hotline import embedded_redis
from hotline.settings import Settings
from hotline.supervisor import ChildSpec, Supervisor

log = logging.getLogger(__name__)

HOTLINE = [sys.executable, "-m", "hotline"]


def _tcp_up(host: str, port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    return check


def redis_specs(settings: Settings) -> list[ChildSpec]:
    if not settings.embedded_redis:
        return []
    sock = settings.redis_socket
    return [
        ChildSpec(
            name="redis",
            argv=embedded_redis.command(sock, settings.var_dir / "redis"),
            ready=lambda: embedded_redis.is_up(sock),
            listens=f"unix://{sock} (embedded)",
        )
    ]


def speech_specs(settings: Settings) -> list[ChildSpec]:
    """The host's one speech recogniser, when a vosk model is configured (else DTMF only)."""
    if settings.vosk_model is None:
        return []
    from ivr import speech_client, speech_service

    sock = speech_client.socket_path(settings)
    return [
        ChildSpec(
            name="speech",
            argv=[sys.executable, "-m", "ivr.speech_service"],
            # Loading a model takes seconds; workers started meanwhile would run without speech.
            ready=lambda: speech_service.ping(sock),
            ready_timeout_s=60,
            listens=f"unix://{sock} (vosk {settings.vosk_model})",
        )
    ]


def softswitch_specs(settings: Settings) -> list[ChildSpec]:
    """The speech service (if configured), then the SIP edge and its workers."""
    return [*speech_specs(settings), *sip_specs(settings)]


def sip_specs(settings: Settings) -> list[ChildSpec]:
    """The SIP edge: Kamailio in front of the worker pool, or one worker on the public port."""
    from ivr import kamailio, registrar

    public = f"sip:{settings.sip_host}:{settings.sip_port}"
    binary = kamailio.find_binary(settings)
    if binary is None:
        log.warning(
            "kamailio not found (%r): ONE SIP worker listens on %s:%d and carries at most %d calls. "
            "Install Debian's kamailio package for the full pool.",
            settings.kamailio_bin,
            settings.sip_host,
            settings.sip_port,
            settings.sip_legs_per_worker,
        )
        return [
            ChildSpec(
                name="sip-worker-0",
                argv=[*HOTLINE, "sip-worker", "--index", "0", "--public"],
                listens=f"{public} (single worker, {settings.sip_legs_per_worker} calls)",
            )
        ]
    specs = [
        ChildSpec(name=f"sip-worker-{i}", argv=[*HOTLINE, "sip-worker", "--index", str(i)])
        for i in range(settings.sip_workers)
    ]
    cfg = kamailio.render(settings)
    registrar.write_initial(settings)  # Kamailio loads the seat passwords when it starts
    legs = settings.sip_workers * settings.sip_legs_per_worker
    specs.append(
        ChildSpec(
            name="kamailio",
            argv=kamailio.command(settings, cfg),
            listens=f"{public} (kamailio -> {settings.sip_workers} workers, {legs} call legs)",
        )
    )
    # Seat passwords into Kamailio, seat phones' registrations into the ACD (ivr/registrar.py).
    specs.append(
        ChildSpec(name="registrar", argv=[*HOTLINE, "registrar"], listens="seat phones' registrar sync")
    )
    return specs


def app_specs(settings: Settings) -> list[ChildSpec]:
    return [
        ChildSpec(
            name="worker", argv=[*HOTLINE, "worker"], listens=f"rq queues {', '.join(settings.rq_queues)}"
        ),
        ChildSpec(
            name="web",
            argv=[*HOTLINE, "web"],
            ready=_tcp_up(settings.web_host, settings.web_port),
            ready_timeout_s=30,
            listens=f"http://{settings.web_host}:{settings.web_port}",
        ),
        ChildSpec(
            name="public-web",
            argv=[*HOTLINE, "web", "--public"],
            ready=_tcp_up(settings.public_web_host, settings.public_web_port),
            ready_timeout_s=30,
            listens=f"http://{settings.public_web_host}:{settings.public_web_port} (public portal, Open311)",
        ),
    ]


def child_env(settings: Settings) -> dict[str, str]:
    # Children must use the Redis this supervisor runs, never start their own.
    return {"REDIS_URL": settings.effective_redis_url}


def run(settings: Settings, specs: Sequence[ChildSpec]) -> int:
    env = child_env(settings)
    for spec in specs:
        spec.env = {**env, **spec.env}
    supervisor = Supervisor(
        specs, backoff_s=settings.restart_backoff_s, backoff_max_s=settings.restart_backoff_max_s
    )
    supervisor.install_signal_handlers()
    supervisor.run(on_started=lambda: _print_listening(specs))
    print("hotline: stopped", flush=True)
    return 0


def _print_listening(specs: Sequence[ChildSpec]) -> None:
    print("hotline: all parts started", flush=True)
    for spec in specs:
        if spec.listens:
            print(f"  {spec.name:<12} {spec.listens}", flush=True)


def prepare_database(settings: Settings, print_credentials: Callable[[Sequence[object]], None]) -> None:
    """Migrate to the newest schema; seed the demo data into an empty database."""
    from hotline import migrate, seed
    from hotline.db import make_engine, make_session_factory

    engine = make_engine(settings.effective_database_url)
    try:
        migrate.upgrade(engine)
        factory = make_session_factory(engine)
        if seed.is_empty(factory):
            print("hotline: empty database, seeding the demo data of 六盘水市", flush=True)
            print_credentials(seed.seed_demo(factory))
    finally:
        engine.dispose()


def prepare_prompts(settings: Settings) -> None:
    """Render missing voice prompts; without espeak-ng the calls still run, silently."""
    from ivr import prompts

    try:
        report = prompts.render(settings.prompts_dir or prompts.default_prompts_dir())
    except prompts.PromptError as exc:
        log.warning("voice prompts not rendered: %s", exc)
        return
    if report.rendered:
        log.info("rendered %d voice prompts", len(report.rendered))


def serve(settings: Settings, print_credentials: Callable[[Sequence[object]], None]) -> int:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    prepare_database(settings, print_credentials)
    prepare_prompts(settings)
    return run(settings, [*redis_specs(settings), *softswitch_specs(settings), *app_specs(settings)])
