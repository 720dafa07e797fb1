"""The Kamailio SIP edge in front of the worker pool: its config, dispatcher list and command line.

Kamailio runs in the foreground (`-DD`) and logs to stderr (`-E`), so the supervisor owns it like
any other child; it forks its own children (UDP/TCP receivers, timers, the dispatcher prober), so
start it with `start_new_session=True` and stop it by signalling the whole process group
(SIGTERM, then SIGKILL after a grace period): SIGTERM to the main pid alone can leave children
holding the SIP port. Its control socket and other runtime files live in `run_dir/kamailio/`,
so it needs neither `/run/kamailio` nor a dedicated user (root works), and several instances
(tests, a second hotline) can run side by side on different ports. No pid file (`-P`) on purpose:
the supervisor knows the pid, and Kamailio refuses to start while its pid file names a live
process, which after a crash can be a zombie or an unrelated process that reused the pid.

The numbers live in `Tuning` and are explained where the template uses them. Defaults: tm
`fr_timer` 2 s (first reply from a worker or a probe), `fr_inv_timer` 10 s, in-dialog requests
toward callers 5 s; the dispatcher probes every worker with OPTIONS every 2 s, one missed probe
marks it inactive, one answered probe re-activates it; pike blocks a source above 100 requests
per 2-s window (the module's trigger lies between 1x and 3x that for IPv4), workers exempt.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import jinja2

from hotline.settings import Settings
from ivr import trunk

TEMPLATE = "kamailio.cfg.j2"
DISPATCHER_SET = 1
# sun_path holds 108 bytes with the terminating NUL; a longer control socket path fails at start.
_MAX_UNIX_SOCKET_PATH = 107
# Kamailio's own log levels: L_ERR -1, L_WARN 0, L_INFO 2, L_DBG 3.
_LOG_LEVELS = {"DEBUG": 3, "INFO": 2, "WARNING": 0, "ERROR": -1}


@dataclass(frozen=True)
class Tuning:
    """The timing and flood numbers rendered into the config; the template explains each."""

    fr_timer_ms: int = 2000
    fr_inv_timer_ms: int = 10_000
    in_dialog_fr_timer_ms: int = 5000
    # Longer than any ring timeout a worker may use (`acd_ring_timeout_s` is at most 120 s).
    seat_ring_limit_ms: int = 130_000
    ping_interval_s: int = 2
    dialog_ka_interval_s: int = 30  # the dialog module's lowest
    pike_unit_s: int = 2
    pike_density: int = 100
    pike_remove_latency_s: int = 10
    children: int = 4
    shm_mb: int = 64
    pkg_mb: int = 8


def find_binary(settings: Settings) -> str | None:
    """The Kamailio executable to run, or None when it is disabled (empty setting) or not installed."""
    name = settings.kamailio_bin.strip()
    if not name:
        return None
    return shutil.which(name)


def runtime_dir(settings: Settings) -> Path:
    return (settings.run_dir / "kamailio").resolve()


def worker_host(settings: Settings) -> str:
    """Where Kamailio reaches the workers: a wildcard bind address is reachable on loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "[::1]"}.get(settings.sip_host, settings.sip_host)


def worker_uris(settings: Settings) -> list[str]:
    host = worker_host(settings)
    return [f"sip:{host}:{settings.sip_worker_base_port + i}" for i in range(settings.sip_workers)]


def seat_credentials_path(settings: Settings) -> Path:
    """The seat passwords Kamailio loads at start (kept current by `ivr.registrar`)."""
    return runtime_dir(settings) / "seat_credentials.cfg"


def render(settings: Settings, tuning: Tuning | None = None) -> Path:
    """Write `kamailio.cfg` and `dispatcher.list` under `run_dir/kamailio/`; return the cfg path."""
    tuning = tuning or Tuning()
    out = runtime_dir(settings)
    ctl_socket = out / "kamailio_ctl"
    if len(str(ctl_socket).encode()) > _MAX_UNIX_SOCKET_PATH:
        raise ValueError(f"Kamailio's control socket path is too long for a unix socket: {ctl_socket}")
    out.mkdir(parents=True, exist_ok=True)
    dispatcher_list = out / "dispatcher.list"
    lines = [f"{DISPATCHER_SET} {uri} 0 0 duid=sip-worker-{i}" for i, uri in enumerate(worker_uris(settings))]
    _write_atomic(dispatcher_list, "# set destination flags priority attrs\n" + "\n".join(lines) + "\n")

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    text = env.get_template(TEMPLATE).render(
        host=settings.sip_host,
        port=settings.sip_port,
        workers=worker_uris(settings),
        runtime_dir=out,
        ctl_socket=ctl_socket,
        dispatcher_list=dispatcher_list,
        seat_credentials=seat_credentials_path(settings),
        log_level=_LOG_LEVELS[settings.log_level],
        **trunk.template_vars(settings, out),
        **asdict(tuning),
    )
    cfg = out / "kamailio.cfg"
    _write_atomic(cfg, text)
    return cfg


def command(settings: Settings, cfg: Path, tuning: Tuning | None = None) -> list[str]:
    """The argv that runs Kamailio in the foreground with `cfg`, logging to stderr."""
    tuning = tuning or Tuning()
    binary = find_binary(settings)
    if binary is None:
        raise FileNotFoundError(f"kamailio binary {settings.kamailio_bin!r} not found on PATH")
    out = runtime_dir(settings)
    return [
        binary,
        "-f", str(cfg.resolve()),
        "-DD",  # stay in the foreground; still forks its worker children
        "-E",  # log to stderr, which the supervisor captures
        "-Y", str(out),
        "-w", str(out),  # working dir, where a core dump would land
        "-m", str(tuning.shm_mb),
        "-M", str(tuning.pkg_mb),
        "-a", "no",
    ]  # fmt: skip


def _write_atomic(path: Path, text: str) -> None:
    # A reload (kamcmd dispatcher.reload) must never read a half-written list.
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)  # the config holds the trunk's password
    tmp.replace(path)
