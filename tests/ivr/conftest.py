"""A softswitch lab for the SIP tests: real workers, a real Kamailio and SIPp callers on 127.0.0.1.

Every test gets its own ports (SIP, RTP, SIPp's), so the tests run beside a hotline on 5060 and
beside each other. Processes are started the way the supervisor starts them (`python -m hotline
sip-worker`, Kamailio's argv from `ivr.kamailio.command`) and stopped at the end of the test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from acd.seat_states import SeatEvent
from acd.store import AcdStore
from hotline import bus
from hotline.settings import Settings, load_settings
from ivr import kamailio, prompts
from tests.ivr.centre import centre  # noqa: F401  (the two-seat centre fixture, for every test here)
from tests.ivr.lab import Phone, tone_prompts

SCENARIOS = Path(__file__).parent / "scenarios"
STANDBY_SEAT = "9999"  # logged in, never ready: the queues are staffed (see `softswitch`)
CALLER = "13800138000"


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, every: float = 0.05) -> Any:
    """The first truthy value of `predicate()`, or the last falsy one after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = predicate()
    return value


def _alaw(code: int) -> int:
    code ^= 0x55
    magnitude = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    magnitude += 8 if segment == 0 else 0x108
    if segment > 1:
        magnitude <<= segment - 1
    return magnitude if code & 0x80 else -magnitude


def _ulaw(code: int) -> int:
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return (0x84 - magnitude) if code & 0x80 else (magnitude - 0x84)


_G711 = {8: [_alaw(c) for c in range(256)], 0: [_ulaw(c) for c in range(256)]}


class RtpSink:
    """What a caller hears: a UDP port that collects the RTP sent to it, decoded from G.711."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.packets: list[tuple[float, list[int]]] = []  # (arrival, samples)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            table = _G711.get(data[1] & 0x7F)
            if table is not None and len(data) > 12:
                self.packets.append((time.monotonic(), [table[b] for b in data[12:]]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def rms(self, start_s: float, end_s: float) -> float:
        """Loudness of what arrived between `start_s` and `end_s` after the first packet."""
        if not self.packets:
            return 0.0
        t0 = self.packets[0][0]
        samples = [s for t, frame in self.packets if start_s <= t - t0 < end_s for s in frame]
        return (sum(s * s for s in samples) / len(samples)) ** 0.5 if samples else 0.0

    @property
    def seconds(self) -> float:
        """How long audio kept coming (first to last packet)."""
        return self.packets[-1][0] - self.packets[0][0] if self.packets else 0.0


@dataclass
class Sipp:
    """One SIPp run (a caller or several); `wait()` gives its exit code (0: every call as scripted)."""

    proc: subprocess.Popen[bytes]
    log: Path

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    group: bool = False  # signal the whole process group (Kamailio forks)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            if self.group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            if self.group:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.kill()
            return self.proc.wait()


@dataclass
class Softswitch:
    """Ports, settings and processes of one test's softswitch."""

    root: Path
    env: dict[str, str]
    settings: Settings
    redis: redis.Redis
    ports: Callable[[int], int]
    send_options: Callable[..., str]
    procs: list[Proc] = field(default_factory=list)
    callers: list[Sipp] = field(default_factory=list)
    phones: list[Phone] = field(default_factory=list)

    # Processes ----------------------------------------------------------------------------------
    def worker(
        self, index: int, *, public: bool = False, env: dict[str, str] | None = None, wait: bool = True
    ) -> Proc:
        """Start `hotline sip-worker` and (unless `wait` is false) wait until it answers OPTIONS."""
        argv = [sys.executable, "-m", "hotline", "sip-worker", "--index", str(index)]
        if public:
            argv.append("--public")
        proc = self._spawn(f"sip-worker-{index}", argv, {**self.env, **(env or {})})
        port = self.settings.sip_port if public else self.settings.sip_worker_base_port + index
        if wait:
            assert self._answers(proc, port), f"worker {index} did not come up:\n{proc.output()}"
        return proc

    def kamailio(self, workers: int | None = None) -> Proc:
        """Render the config (for `workers` workers) and start Kamailio as the supervisor would."""
        settings = self.settings
        if workers is not None:
            settings = settings.model_copy(update={"sip_workers": workers})
        cfg = kamailio.render(settings)
        proc = self._spawn("kamailio", kamailio.command(settings, cfg), self.env, group=True)
        assert self._answers(proc, settings.sip_port), f"kamailio did not come up:\n{proc.output()}"
        return proc

    def registrar(self, env: dict[str, str] | None = None) -> Proc:
        """`hotline registrar`: seat passwords and transfer numbers into Kamailio, registrations
        into the ACD."""
        argv = [sys.executable, "-m", "hotline", "registrar"]
        return self._spawn("registrar", argv, {**self.env, **(env or {})})

    def _answers(self, proc: Proc, port: int) -> bool:
        """Wait until `proc` answers OPTIONS on `port` (False if it died or never did)."""
        up = wait_for(
            lambda: proc.proc.poll() is not None or self.options(port, 0.3).startswith("SIP/2.0 200")
        )
        return bool(up) and proc.proc.poll() is None

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], group: bool = False) -> Proc:
        log = self.root / f"{name}-{len(self.procs)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log, group)
        self.procs.append(proc)
        return proc

    def phone(self, user: str = CALLER, *, refuse_transfer: bool = False) -> Phone:
        """A pjsua2 test phone (its own process) that records what it hears."""
        record = self.root / f"phone-{len(self.phones)}-heard.wav"
        phone = Phone(self.ports(1), self.ports(10), user, record, refuse_transfer=refuse_transfer)
        self.phones.append(phone)
        return phone

    def uri(self, port: int | None = None, user: str = "12345") -> str:
        return f"sip:{user}@127.0.0.1:{port or self.settings.sip_port}"

    def stop_all(self) -> None:
        for phone in self.phones:
            phone.quit()
        for caller in self.callers:
            if caller.proc.poll() is None:
                caller.proc.kill()
            caller.proc.wait()
        for proc in reversed(self.procs):
            proc.stop(timeout=10)

    # SIP ----------------------------------------------------------------------------------------
    def options(self, port: int, timeout_s: float = 1.0) -> str:
        """The status line of the answer to an OPTIONS sent to 127.0.0.1:`port` ("" if none)."""
        return self.send_options("127.0.0.1", port, timeout_s)

    def sipp(
        self,
        port: int,
        *,
        scenario: str = "call.xml",
        calls: int = 1,
        concurrent: int = 1,
        talk_ms: int = 1000,
        rtp_port: int | None = None,
        caller: str = CALLER,
        rate: int = 50,
    ) -> Sipp:
        """Start SIPp placing `calls` calls (at most `concurrent` at once) to 127.0.0.1:`port`.

        `rtp_port` is where the callers ask for their audio (default: SIPp's own media port).
        """
        sip_port, media_port = self.ports(1), self.ports(4)
        argv = [
            "sipp",
            f"127.0.0.1:{port}",
            "-sf",
            str(SCENARIOS / scenario),
            "-s",
            "12345",
            "-i",
            "127.0.0.1",
            "-p",
            str(sip_port),
            "-mp",
            str(media_port),
            "-key",
            "caller",
            caller,
            "-key",
            "rtp_port",
            str(rtp_port or media_port),
            "-m",
            str(calls),
            "-l",
            str(concurrent),
            "-r",
            str(rate),
            "-d",
            str(talk_ms),
            "-nostdin",
            "-timeout",
            "25",
            "-timeout_error",
            "-max_recv_loops",
            "1000",
        ]
        log = self.root / f"sipp-{len(self.callers)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, cwd=self.root, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        self.callers.append(Sipp(proc, log))
        return self.callers[-1]

    wait_for = staticmethod(wait_for)

    # Bus ----------------------------------------------------------------------------------------
    def events(self, type_: str | None = None) -> list[bus.Event]:
        found = [bus.Event.from_fields(i, f) for i, f in self.redis.xrange(bus.EVENTS_STREAM)]
        return [e for e in found if type_ is None or e.type == type_]

    def arrived(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until `count` calls have arrived (call.arrived events)."""
        return bool(wait_for(lambda: len(self.events("call.arrived")) >= count, timeout))

    def workers_alive(self) -> dict[str, dict[str, Any]]:
        """Heartbeats by worker name (sip-worker-N: the host, the same for all here, left off)."""
        return {name.split("@")[0]: fields for name, fields in bus.alive(self.redis, "sip").items()}


@pytest.fixture
def softswitch(
    tmp_path: Path,
    redis_client: redis.Redis,
    redis_url: str,
    database_url: str,
    ports: Callable[[int], int],
    sip_options: Callable[..., str],
    db: sessionmaker[Session],
) -> Iterator[Softswitch]:
    """Ports and settings for up to 3 workers behind one Kamailio; nothing started yet.

    Workers write CDRs and recordings to the test database (migrated, emptied after the test).
    """
    if shutil.which("sipp") is None:
        pytest.skip("SIPp (Debian sip-tester) is not installed")
    workers = 3
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(
        HOTLINE_VAR_DIR=str(tmp_path / "var"),
        HOTLINE_SIP_HOST="127.0.0.1",
        HOTLINE_SIP_PORT=str(ports(1)),
        HOTLINE_SIP_WORKERS=str(workers),
        HOTLINE_SIP_WORKER_BASE_PORT=str(ports(workers)),
        HOTLINE_RTP_PORTS_PER_WORKER="20",
        HOTLINE_RTP_BASE_PORT=str(ports(workers * 20)),
        # No rendered prompts: a test that wants a greeting brings its own folder.
        HOTLINE_PROMPTS_DIR=str(tmp_path / "no-prompts"),
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        PYTHONUNBUFFERED="1",
        # A worker that dies of a signal leaves its Python stacks in its log.
        PYTHONFAULTHANDLER="1",
    )
    settings = load_settings(environ=env, config_file=tmp_path / "absent.toml")
    lab = Softswitch(tmp_path, env, settings, redis_client, ports, sip_options)
    # A staffed centre: one seat logged in but not ready (and without a phone), so a caller who
    # chooses a person waits in the queue instead of getting the nobody-logged-in fallback.
    standby = AcdStore(redis_client)
    standby.upsert_seat(STANDBY_SEAT, {"general": 1, "enterprise": 1, "dialect": 1})
    standby.seat_event(STANDBY_SEAT, SeatEvent.LOGIN)
    try:
        yield lab
    finally:
        lab.stop_all()


@pytest.fixture
def rtp_sink() -> Iterator[Callable[[], RtpSink]]:
    """`rtp_sink()`: a new RTP receiver (a caller's ear), closed after the test."""
    sinks: list[RtpSink] = []

    def make() -> RtpSink:
        sinks.append(RtpSink())
        return sinks[-1]

    try:
        yield make
    finally:
        for sink in sinks:
            sink.close()


@pytest.fixture(scope="session")
def tone_prompt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every catalog prompt as a 0.25-s tone of its own pitch: menus run in a second, not a minute."""
    catalog = prompts.load_catalog(prompts.default_prompts_dir())
    return tone_prompts(tmp_path_factory.mktemp("tone-prompts"), catalog)


@pytest.fixture(scope="session")
def spoken_greeting_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tone prompts, but the greeting rendered from the catalog (espeak-ng) as a caller hears it."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("rendering the greeting needs espeak-ng and sox")
    catalog = prompts.load_catalog(prompts.default_prompts_dir())
    folder = tone_prompts(tmp_path_factory.mktemp("spoken-greeting"), catalog)
    prompts.render_one(catalog["greeting"], folder / "audio" / "zh" / "greeting.wav")
    return folder
