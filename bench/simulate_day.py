"""A compressed stretch of a hotline day through real SIP, next to what Erlang A predicts.

Real parts: Kamailio (registrar and dispatcher) in front of a pool of SIP workers, `hotline registrar`,
the ACD in Redis, SQLite for the CDRs, N seats whose phones are `hotline phone --wav-in` processes
registered with their passwords, and callers in pjsua2 processes (`bench/sim_callers.py`, four calls
each). Callers arrive by a Poisson process, press 0, wait in the general queue and hang up after an
exponential patience unless an agent answered first; a seat holds each call for an exponential talk
time, then hangs up, and the ACD keeps it in wrap-up for the configured time. The outcome is read
from the CDRs in SQL (`acd.reports.call_records`, `acd.stats.compute`) and printed next to Erlang A
(`acd.staffing.forecast_a`) for the same arrival rate, AHT, patience and seats: once with the
parameters asked for, once with those the run actually drew (measured from the same CDRs). Baselines
in the same run: the same model through an ideal zero-latency FCFS queue in Python, 300 times with
other draws (how much one stretch of this length varies) and once with this run's very callers
(arrival times, patiences, talk times drawn per caller from --seed before the run): the
like-for-like figure for the real system.

Time is compressed by --scale (default 10): every duration of the model (inter-arrival times, talk,
wrap-up, patience, the 15-s service-level target, the ACD's dispatch interval) is divided by it,
and the measured waits are multiplied back, so the figures printed are in the simulated day's
seconds. What is not compressed: SIP signalling, RTP, Redis and SQL latency (a 100-ms delay in the
system shows as 1 s of the simulated day at scale 10), the IVR (0.25-s tone prompts instead of the
13 s of spoken greeting and notice; it runs before the caller queues, so it does not count in the
wait) and the RONA ring timeout (15 s; seats answer at once, so it only matters if one fails to).

    python bench/simulate_day.py                          # 16 seats, 450 calls/h, AHT 90+30 s, ~6 min
    python bench/simulate_day.py --seats 10 --rate 270 --minutes 40 --scale 8

Loopback only; SQLite and the embedded Redis in a temporary folder. Needs kamailio.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import heapq
import math
import os
import queue
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.sip_load, tests.*

import redis  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from acd.history import ChangeRecorder  # noqa: E402
from acd.models import Call, Seat  # noqa: E402
from acd.reports import call_records, wrap_up_mean_s  # noqa: E402
from acd.seat_states import SeatEvent, SeatState  # noqa: E402
from acd.staffing import Forecast, Load, forecast_a, forecast_c  # noqa: E402
from acd.stats import CallStats, compute  # noqa: E402
from bench.sip_load import Pool, percentile, wait  # noqa: E402
from hotline import bus, embedded_redis, migrate  # noqa: E402
from hotline.db import make_engine, make_session_factory, transaction  # noqa: E402
from ivr import kamailio, prompts  # noqa: E402
from tests.helpers import free_port_range  # noqa: E402
from tests.ivr.lab import tone, tone_prompts, write_wav  # noqa: E402

HERE = Path(__file__).resolve().parent
TARGET_S = 15.0  # GB/T 33358: answered by a person within 15 s
SHORT_ABANDON_S = 5.0  # acd.stats' default: a caller gone within 5 s of queueing is not counted
IDEAL_RUNS = 300
SLOTS_PER_CALLER = 4  # calls per pjsua2 process (the wheel's limit)


class DayPool(Pool):
    """`bench/sip_load.Pool`, patient: a loaded 2-core machine can take a minute to start 17 workers."""

    worker_start_s = 120.0
    edge_start_s = 30.0


@dataclasses.dataclass(frozen=True)
class Params:
    seats: int
    rate: float  # calls per hour of the simulated day
    talk_s: float  # mean talk time (exponential), simulated seconds
    wrap_up_s: float  # fixed wrap-up after each call (the ACD's acd_wrap_up_s)
    patience_s: float  # mean patience (exponential), from queueing
    minutes: float  # simulated minutes of arrivals
    warmup_minutes: float  # arrivals in these first minutes run but are not counted
    scale: float  # simulated seconds per real second
    seed: int

    @property
    def aht_s(self) -> float:
        return self.talk_s + self.wrap_up_s

    def real(self, simulated_s: float) -> float:
        return simulated_s / self.scale


@dataclasses.dataclass(frozen=True)
class Caller:
    """One caller of the simulated stretch, in simulated seconds (drawn before the run, from the seed)."""

    arrives_s: float
    patience_s: float
    talk_s: float  # how long the agent who answers will talk with this caller


def draw_callers(p: Params) -> list[Caller]:
    rng = random.Random(p.seed)
    callers, t = [], 0.0
    while (t := t + rng.expovariate(p.rate / 3600)) <= p.minutes * 60:
        callers.append(Caller(t, rng.expovariate(1 / p.patience_s), rng.expovariate(1 / p.talk_s)))
    return callers


@dataclasses.dataclass
class Attempt:
    number: str
    placed: float
    patience_s: float  # real seconds
    talk_s: float  # real seconds
    call_id: str = ""
    queued_seen: float = 0.0  # wall clock when the driver saw call.queued (its patience starts)
    queued: bool = False
    answered: bool = False
    abandoned: bool = False


@dataclasses.dataclass
class Slot:
    proc: int
    index: int
    number: str
    attempt: Attempt | None = None


@dataclasses.dataclass
class SeatPhone:
    extension: str
    proc: subprocess.Popen[str]
    calls: int = 0  # answered so far (a scheduled hang-up names the call it is for)
    in_call: bool = False
    # The phone's answer and the hotline's call.answered (naming the caller, so the talk time) come
    # in either order; the hang-up is scheduled once both are in.
    answered_at: float | None = None
    talk_s: float | None = None


class Day:
    """Drives arrivals, abandonment and the seats' talk times from one loop, with a timer heap."""

    def __init__(
        self, p: Params, root: Path, pool: Pool, client: redis.Redis, factory: sessionmaker[Session]
    ):
        self.p, self.root, self.pool, self.client, self.factory = p, root, pool, client, factory
        self.inbox: queue.SimpleQueue[tuple[str, str, str]] = queue.SimpleQueue()
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self.callers: list[subprocess.Popen[str]] = []
        self.slots: list[Slot] = []
        self.by_number: dict[str, Slot] = {}
        self.seats: dict[str, SeatPhone] = {}
        self.store: Any = None
        self.counts: Counter[str] = Counter()
        self.ivr_s: list[float] = []
        self.attempts: list[Attempt] = []
        self._stop = threading.Event()

    # Processes ---------------------------------------------------------------------------------
    def _follow(self, source: str, key: str, stream: IO[str]) -> None:
        for line in stream:
            self.inbox.put((source, key, line.strip()))

    def _spawn(self, source: str, key: str, argv: list[str]) -> subprocess.Popen[str]:
        log = (self.root / "logs" / f"{source}-{key}.err").open("w")
        proc = subprocess.Popen(
            argv,
            env=self.pool.env,
            cwd=self.root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        threading.Thread(target=self._follow, args=(source, key, proc.stdout), daemon=True).start()
        return proc

    @staticmethod
    def _send(proc: subprocess.Popen[str], line: str) -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def start_seats(self, passwords: dict[str, str]) -> None:
        from acd.store import AcdStore

        self.store = AcdStore(self.client, on_change=ChangeRecorder(self.factory, bus.EventBus(self.client)))
        voice = write_wav(self.root / "agent.wav", tone(2.0, 3300.0))
        server = f"127.0.0.1:{self.pool.settings.sip_port}"
        for ext, password in passwords.items():
            secret = self.root / f"seat-{ext}.pw"
            secret.write_text(password)
            secret.chmod(0o600)
            argv = [
                sys.executable,
                "-m",
                "hotline",
                "phone",
                "--extension",
                ext,
                "--password-file",
                str(secret),
            ]
            argv += [
                "--server",
                server,
                "--port",
                str(free_port_range(1)),
                "--rtp-port",
                str(free_port_range(20)),
            ]
            argv += ["--wav-in", str(voice)]
            self.store.upsert_seat(ext, {"general": 1})
            self.seats[ext] = SeatPhone(ext, self._spawn("seat", ext, argv))
        registered: set[str] = set()
        deadline = time.monotonic() + 60
        while len(registered) < len(passwords) and time.monotonic() < deadline:
            try:
                source, key, line = self.inbox.get(timeout=1)
            except queue.Empty:
                continue
            if source == "seat" and line == "registered 200":
                registered.add(key)
        if len(registered) < len(passwords):
            raise SystemExit(f"only {len(registered)} of {len(passwords)} seat phones registered")
        wait(
            lambda: all(self.store.seat(ext).registered for ext in passwords), 30, "registrations in the ACD"
        )
        for ext in passwords:
            self.store.seat_event(ext, SeatEvent.LOGIN)
            self.store.seat_event(ext, SeatEvent.READY)

    def start_callers(self, processes: int) -> None:
        script = str(HERE / "sim_callers.py")
        for i in range(processes):
            numbers = [f"139{i:04d}{s:04d}" for s in range(SLOTS_PER_CALLER)]
            argv = [sys.executable, script, "--port", str(free_port_range(1))]
            argv += [
                "--rtp-port",
                str(free_port_range(10 * SLOTS_PER_CALLER)),
                "--numbers",
                ",".join(numbers),
            ]
            self.callers.append(self._spawn("caller", str(i), argv))
            for s, number in enumerate(numbers):
                slot = Slot(i, s, number)
                self.slots.append(slot)
                self.by_number[number] = slot
        ready = 0
        deadline = time.monotonic() + 30
        while ready < processes and time.monotonic() < deadline:
            try:
                source, _key, line = self.inbox.get(timeout=1)
            except queue.Empty:
                continue
            ready += source == "caller" and line == "ready"
        if ready < processes:
            raise SystemExit(f"only {ready} of {processes} caller processes came up")

    def follow_events(self) -> None:
        client = bus.connect(self.pool.env["REDIS_URL"])
        last = "$"
        wanted = {"call.queued", "call.answered", "seat.changed", "call.arrived"}
        while not self._stop.is_set():
            found = client.xread({bus.EVENTS_STREAM: last}, block=200, count=500)
            for _stream, entries in found or []:
                for event_id, fields in entries:
                    last = event_id
                    if fields.get("type") in wanted:
                        self.inbox.put(("event", fields["type"], fields.get("data", "{}")))
        client.close()

    def stop(self) -> None:
        self._stop.set()
        for proc in [*self.callers, *(s.proc for s in self.seats.values())]:
            self._send(proc, "quit")
        for proc in [*self.callers, *(s.proc for s in self.seats.values())]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # The loop ----------------------------------------------------------------------------------
    def at(self, when: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self.timers, (when, self._seq, action))

    def arrive(self, caller: Caller) -> None:
        free = [s for s in self.slots if s.attempt is None]
        if not free:
            self.counts["no free caller slot (bench too small)"] += 1
            return
        busy = Counter(s.proc for s in self.slots if s.attempt is not None)
        slot = min(free, key=lambda s: (busy[s.proc], s.proc, s.index))  # spread over the processes
        patience, talk = self.p.real(caller.patience_s), self.p.real(caller.talk_s)
        slot.attempt = Attempt(slot.number, time.monotonic(), patience, talk)
        self.attempts.append(slot.attempt)
        self.counts["placed"] += 1
        self._send(
            self.callers[slot.proc], f"call {slot.index} sip:12345@127.0.0.1:{self.pool.settings.sip_port}"
        )

    def give_up(self, slot: Slot, attempt: Attempt) -> None:
        if slot.attempt is attempt and not attempt.answered:
            attempt.abandoned = True
            self._send(self.callers[slot.proc], f"hangup {slot.index}")

    def talk(self, seat: SeatPhone) -> None:
        if seat.answered_at is not None and seat.talk_s is not None:
            self.at(seat.answered_at + seat.talk_s, functools.partial(self.seat_hangs_up, seat, seat.calls))
            seat.answered_at = seat.talk_s = None

    def seat_hangs_up(self, seat: SeatPhone, call: int) -> None:
        if seat.calls == call and seat.in_call:
            self._send(seat.proc, "hangup")

    def handle(self, source: str, key: str, line: str) -> None:
        import json

        if source == "caller":
            proc = int(key)
            words = line.split()
            if len(words) >= 2 and words[1] == "ended":
                ended = next(s for s in self.slots if s.proc == proc and s.index == int(words[0]))
                if ended.attempt is not None and not ended.attempt.queued:
                    self.counts[f"ended before queueing (SIP {words[2] if len(words) > 2 else '?'})"] += 1
                ended.attempt = None
            elif words and words[0] == "error":
                self.counts[f"caller error: {' '.join(words[1:])[:60]}"] += 1
        elif source == "seat":
            seat = self.seats[key]
            if line == "answered":
                seat.calls += 1
                seat.in_call = True
                seat.answered_at = time.monotonic()
                self.talk(seat)
            elif line.startswith("ended"):
                seat.in_call = False
                seat.answered_at = seat.talk_s = None
            elif line.startswith("error"):
                self.counts[f"seat error: {line[6:60]}"] += 1
        elif source == "event":
            data = json.loads(line)
            slot = self.by_number.get(str(data.get("caller", "")))
            if key == "call.arrived" and slot is not None and slot.attempt is not None:
                slot.attempt.placed = time.monotonic()
            elif key == "call.queued" and slot is not None and slot.attempt is not None:
                attempt = slot.attempt
                if not attempt.queued:
                    attempt.queued = True
                    attempt.call_id, attempt.queued_seen = str(data.get("call_id", "")), time.time()
                    self.ivr_s.append(time.monotonic() - attempt.placed)
                    self.at(
                        time.monotonic() + attempt.patience_s, functools.partial(self.give_up, slot, attempt)
                    )
            elif key == "call.answered" and slot is not None and slot.attempt is not None:
                slot.attempt.answered = True
                answering = self.seats.get(str(data.get("seat")))
                if answering is not None:
                    answering.talk_s = slot.attempt.talk_s
                    self.talk(answering)
            elif key == "seat.changed" and data.get("state") == SeatState.NOT_READY.value:
                # RONA (the phone did not answer in time): the agent presses ready again at once.
                self.counts[f"seat not ready ({data.get('reason')})"] += 1
                try:
                    self.store.seat_event(str(data["extension"]), SeatEvent.READY)
                except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                    self.counts[f"re-ready failed: {type(exc).__name__}"] += 1

    def run(self, callers: list[Caller], drain_s: float) -> None:
        threading.Thread(target=self.follow_events, daemon=True).start()
        time.sleep(0.5)
        start = time.monotonic()
        for caller in callers:
            self.at(start + self.p.real(caller.arrives_s), functools.partial(self.arrive, caller))
        end = start + (self.p.real(callers[-1].arrives_s) if callers else 0)
        while True:
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                heapq.heappop(self.timers)[2]()
            if now > end and all(s.attempt is None for s in self.slots):
                break
            if now > end + drain_s:
                self.counts["calls still up at the end of the drain"] += sum(
                    s.attempt is not None for s in self.slots
                )
                break
            timeout = max(0.0, min(0.2, (self.timers[0][0] - now) if self.timers else 0.2))
            try:
                item = self.inbox.get(timeout=timeout)
            except queue.Empty:
                continue
            self.handle(*item)
            while True:  # everything already in: the events first, so a timer sees an answer that came
                try:
                    self.handle(*self.inbox.get_nowait())
                except queue.Empty:
                    break


# Figures ---------------------------------------------------------------------------------------
def in_day(stats: CallStats, scale: float) -> dict[str, float | None]:
    def times(value: float | None) -> float | None:
        return None if value is None else value * scale

    return {
        "sl": stats.service_level,
        "asa": times(stats.asa_s),
        "abandon": stats.abandoned / stats.offered if stats.offered else None,
        "aht": times(stats.aht_s),
        "patience": times(stats.patience_s),
        "rate": stats.calls_per_hour / scale,
    }


def fmt(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "∞"
    return format(value, spec)


def row(name: str, sl: float | None, asa: float | None, abandon: float | None, extra: str = "") -> str:
    figures = f"SL {fmt(sl, '6.1%')}   ASA {fmt(asa, '5.1f')} s   abandoned {fmt(abandon, '6.1%')}"
    return f"  {name:<56} {figures}{extra}"


def forecast_row(name: str, f: Forecast) -> str:
    return row(name, f.service_level, f.asa_s, f.abandon_rate, f"   occupancy {f.occupancy:.0%}")


def ideal_runs(p: Params, exponential_talk: bool, runs: int) -> list[tuple[float, float, float]]:
    """Other draws of the same model (other seeds) through `fcfs`: how much one run of this length varies.

    Service is the talk plus the fixed wrap-up, or with `exponential_talk` an exponential of the same
    mean AHT: Erlang A's own assumption, so those runs also check the formula.
    """
    results = []
    for seed in range(runs):
        callers = draw_callers(dataclasses.replace(p, seed=p.seed + 1 + seed))
        if exponential_talk:
            rng = random.Random(seed)

            def exponential(_caller: Caller, rng: random.Random = rng) -> float:
                return rng.expovariate(1 / p.aht_s)

            results.append(fcfs(p, callers, exponential))
        else:
            results.append(fcfs(p, callers, lambda c: c.talk_s + p.wrap_up_s))
    return results


def fcfs(p: Params, callers: list[Caller], service: Callable[[Caller], float]) -> tuple[float, float, float]:
    """`callers` through a zero-latency FCFS queue of `p.seats`: (SL, ASA, abandoned) of those after warm-up.

    Callers are taken in arrival order; each is served by the seat that frees up first, unless its
    patience runs out before: exact for one FCFS queue of identical seats (M/G/n+M).
    """
    free = [0.0] * p.seats
    offered = within = answered = abandoned = 0
    waited = 0.0
    for c in callers:
        start = max(c.arrives_s, free[0])
        counted = c.arrives_s >= p.warmup_minutes * 60
        offered += counted
        if start - c.arrives_s > c.patience_s:
            abandoned += counted
            continue
        heapq.heapreplace(free, start + service(c))
        if counted:
            answered += 1
            within += start - c.arrives_s <= TARGET_S
            waited += start - c.arrives_s
    return within / max(offered, 1), waited / max(answered, 1), abandoned / max(offered, 1)


def ideal_row(name: str, runs: list[tuple[float, float, float]]) -> str:
    def spread(i: int, spec: str) -> str:
        values = sorted(r[i] for r in runs)
        low, high = percentile(values, 0.05), percentile(values, 0.95)
        return f"{format(statistics.mean(values), spec)} [{format(low, spec)}–{format(high, spec)}]"

    return f"  {name:<56} SL {spread(0, '.1%')}  ASA {spread(1, '.1f')} s  abandoned {spread(2, '.1%')}"


def report(day: Day, p: Params, since: dt.datetime, until: dt.datetime, callers: list[Caller]) -> None:
    target = p.real(TARGET_S)
    with day.factory() as session:
        records = call_records(session, since, until)
        wrap = wrap_up_mean_s(session, since, until + dt.timedelta(minutes=5))
        window = (until - since).total_seconds()
        erlang = compute(records, window_s=window, target_s=target, short_abandon_s=0.0, wrap_up_mean_s=wrap)
        hotline = compute(
            records,
            window_s=window,
            target_s=target,
            short_abandon_s=p.real(SHORT_ABANDON_S),
            wrap_up_mean_s=wrap,
        )
        dispositions = session.execute(
            select(Call.disposition, func.count())
            .where(Call.direction == "in", Call.arrived_at >= since, Call.arrived_at < until)
            .group_by(Call.disposition)
        ).all()
    waits = sorted(
        (r.agent_answered_at - r.queued_at).total_seconds() for r in records if r.agent_answered_at
    )
    measured = in_day(erlang, p.scale)
    official = in_day(hotline, p.scale)
    asked = Load(p.rate, p.aht_s, p.patience_s)
    # The drawn AHT is the talk the seats drew plus the configured wrap-up: the seat events' wrap-up
    # also holds the time a seat sat in wrap-up after it ended because no caller was waiting (the
    # ACD sweeps wrap-ups when it dispatches), which costs no capacity.
    talk = (measured["aht"] - wrap * p.scale) if measured["aht"] is not None else p.talk_s
    drawn = Load(measured["rate"] or 0.0, talk + p.wrap_up_s, measured["patience"] or math.inf)

    print(
        f"\ncounted: calls queued from minute {p.warmup_minutes:g} to {p.minutes:g} of the simulated stretch"
    )
    print(
        f"  offered {erlang.offered}, answered {erlang.answered}, abandoned {erlang.abandoned}, "
        f"still waiting {erlang.waiting_now}; CDR dispositions (arrived in the window): "
        + ", ".join(f"{d.value} {n}" for d, n in sorted(dispositions, key=lambda x: -x[1]))
    )
    print(
        f"  drawn by this run (from the CDRs): {measured['rate']:.0f} calls/h, talk {talk:.1f} s "
        f"(wrap-up in the seat events {wrap * p.scale:.1f} s, set {p.wrap_up_s:g}), "
        f"patience {fmt(measured['patience'], '.0f')} s (MLE: waits of all callers / abandons)"
    )
    print(
        f"\nservice level = answered within {TARGET_S:g} s / offered; ASA = mean wait of answered calls; "
        "abandoned / offered"
    )
    print(row("measured (every queued caller offered)", measured["sl"], measured["asa"], measured["abandon"]))
    print(
        row(
            f"measured, hotline definition (<{SHORT_ABANDON_S:g} s gone not counted)",
            official["sl"],
            official["asa"],
            official["abandon"],
            f"   ({hotline.short_abandoned} short abandons left out)",
        )
    )
    print(
        forecast_row(
            f"Erlang A, as asked ({p.rate:g}/h, AHT {p.aht_s:g}, patience {p.patience_s:g})",
            forecast_a(asked, p.seats, TARGET_S),
        )
    )
    if drawn.calls_per_hour > 0 and math.isfinite(drawn.patience_s):
        print(
            forecast_row(
                f"Erlang A, as drawn ({drawn.calls_per_hour:.0f}/h, AHT {drawn.aht_s:.0f}, "
                f"patience {drawn.patience_s:.0f})",
                forecast_a(drawn, p.seats, TARGET_S),
            )
        )
    print(
        forecast_row(
            "Erlang C, as asked (nobody abandons)", forecast_c(Load(p.rate, p.aht_s), p.seats, TARGET_S)
        )
    )
    print(
        f"  ideal FCFS queue in Python, same parameters, {IDEAL_RUNS} runs of this length: "
        "mean [5–95 % of runs]"
    )
    print(ideal_row("  talk Exp + fixed wrap-up (what the seats do)", ideal_runs(p, False, IDEAL_RUNS)))
    print(ideal_row("  service Exp(AHT) (Erlang A's assumption)", ideal_runs(p, True, IDEAL_RUNS)))
    replay = fcfs(p, callers, lambda c: c.talk_s + p.wrap_up_s)
    print(row("  the same queue, this run's very callers and draws", *replay))
    if waits:
        low = [percentile(waits, q) for q in (0.0, 0.1, 0.5)]
        print(
            "\nsystem floor: waits of answered calls, real ms min / p10 / p50: "
            + " / ".join(f"{w * 1000:.0f}" for w in low)
            + f" (= {low[0] * p.scale:.1f} / {low[1] * p.scale:.1f} / {low[2] * p.scale:.1f} simulated s); "
            f"answered within {TARGET_S:g} s: {erlang.answered_within_target}"
        )
    lags(day)
    if day.ivr_s:
        print(f"IVR before the queue (not in the wait): median {statistics.median(day.ivr_s):.2f} real s")
    others = {k: v for k, v in day.counts.items() if k != "placed"}
    print(f"placed {day.counts['placed']} calls; other counts: {others or 'none'}")


def lags(day: Day) -> None:
    """How far the driver's patience clock trails the CDR's queued_at, and when abandoners left."""
    by_id = {a.call_id: a for a in day.attempts if a.call_id}
    with day.factory() as session:
        rows = session.execute(
            select(Call.call_id, Call.queued_at, Call.agent_answered_at, Call.ended_at).where(
                Call.call_id.in_(list(by_id))
            )
        ).all()
    start, late = [], []
    for call_id, queued_at, answered_at, ended_at in rows:
        attempt = by_id[call_id]
        if queued_at is None:
            continue
        start.append(attempt.queued_seen - queued_at.timestamp())
        if attempt.abandoned and answered_at is None and ended_at is not None:
            late.append((ended_at - queued_at).total_seconds() - attempt.patience_s)
    if start:
        print(
            f"patience clock: the driver saw call.queued {statistics.median(start) * 1000:.0f} ms (median; "
            f"p90 {percentile(sorted(start), 0.9) * 1000:.0f} ms) after the CDR's queued_at"
        )
    if late:
        print(
            f"abandoners: the CDR ends {statistics.median(late) * 1000:.0f} ms (median) after queued_at + "
            f"patience ({len(late)} calls)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seats", type=int, default=16)
    parser.add_argument("--rate", type=float, default=450.0, help="calls per hour (simulated)")
    parser.add_argument("--talk", type=float, default=90.0, help="mean talk time, s (exponential)")
    parser.add_argument("--wrap-up", type=float, default=30.0, help="wrap-up after each call, s (fixed)")
    parser.add_argument("--patience", type=float, default=90.0, help="mean patience, s (exponential)")
    parser.add_argument("--minutes", type=float, default=50.0, help="simulated minutes of arrivals")
    parser.add_argument("--warmup", type=float, default=5.0, help="simulated minutes not counted")
    parser.add_argument("--scale", type=float, default=10.0, help="simulated seconds per real second")
    parser.add_argument("--workers", type=int, default=0, help="SIP workers (default: enough for every slot)")
    parser.add_argument(
        "--callers", type=int, default=0, help="caller processes, 4 calls each (default: auto)"
    )
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    p = Params(
        args.seats,
        args.rate,
        args.talk,
        args.wrap_up,
        args.patience,
        args.minutes,
        args.warmup,
        args.scale,
        args.seed,
    )
    if shutil.which("kamailio") is None:
        raise SystemExit("needs kamailio")
    root = Path(tempfile.mkdtemp(prefix="simulate-day-"))
    server = embedded_redis.start(root / "redis.sock", root / "redis")
    try:
        run(p, args, root, f"unix://{root / 'redis.sock'}")
    finally:
        server.terminate()
        server.wait(10)


def run(p: Params, args: argparse.Namespace, root: Path, redis_url: str) -> None:
    began = time.monotonic()
    load_before = os.getloadavg()
    database_url = f"sqlite:///{root / 'day.db'}"
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    client = bus.connect(redis_url)
    client.flushdb()
    tone_dir = tone_prompts(root / "prompts", prompts.load_catalog(prompts.default_prompts_dir()))
    shutil.copy(prompts.default_prompts_dir() / "catalog.toml", tone_dir / "catalog.toml")

    # Callers up at once: mean load plus queue, with room for bursts (a slot is busy from dial to BYE).
    erlangs = p.rate * p.aht_s / 3600
    callers = args.callers or math.ceil((p.seats + max(8, 2 * math.sqrt(erlangs) + 6)) / SLOTS_PER_CALLER)
    workers = args.workers or math.ceil(callers * SLOTS_PER_CALLER / 2) + 1  # two callers per worker
    passwords = {f"{8001 + i}": secrets.token_urlsafe(12) for i in range(p.seats)}
    with transaction(factory) as session:
        for ext, password in passwords.items():
            session.add(Seat(extension=ext, name=f"{ext}座席", sip_password=password, skills={"general": 1}))

    pool = DayPool(root, workers, database_url, redis_url, tone_dir)
    pool.env.update(
        HOTLINE_ACD_WRAP_UP_S=repr(p.real(p.wrap_up_s)),
        HOTLINE_ACD_DISPATCH_INTERVAL_S=repr(max(0.02, p.real(1.0))),
        HOTLINE_ACD_MAX_WAITING="10000",
    )
    callers_drawn = draw_callers(p)

    print(
        f"time compressed {p.scale:g}x: 1 real second = {p.scale:g} simulated seconds. Inter-arrival "
        f"times, talk, wrap-up, patience, the {TARGET_S:g}-s target (run at {p.real(TARGET_S):.2f} s) and "
        f"the ACD's dispatch interval are all divided by {p.scale:g}; waits are multiplied back. SIP, RTP, "
        "Redis and SQL latencies are not compressed."
    )
    print(
        f"simulated: {p.minutes:g} min of Poisson arrivals at {p.rate:g} calls/h "
        f"({len(callers_drawn)} calls), "
        f"{p.seats} seats, talk Exp(mean {p.talk_s:g} s) + wrap-up {p.wrap_up_s:g} s = AHT {p.aht_s:g} s "
        f"({erlangs:.1f} erlangs), patience Exp(mean {p.patience_s:g} s) from queueing"
    )
    print(
        f"real: {p.minutes * 60 / p.scale:.0f} s of arrivals; {workers} SIP workers x 4 legs behind "
        f"Kamailio, registrar, {p.seats} `hotline phone` seats, {callers} caller processes x "
        f"{SLOTS_PER_CALLER} calls ({root})"
    )
    registrar = None
    day: Day | None = None
    try:
        (root / "logs").mkdir(exist_ok=True)
        with (root / "logs" / "registrar.log").open("wb") as out:
            registrar = subprocess.Popen(
                [sys.executable, "-m", "hotline", "registrar"],
                env=pool.env,
                cwd=root,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        credentials = kamailio.seat_credentials_path(pool.settings)
        last = max(passwords)
        wait(lambda: credentials.exists() and last in credentials.read_text(), 30, "seat credentials")
        pool.start()
        day = Day(p, root, pool, client, factory)
        day.start_seats(passwords)
        day.start_callers(callers)
        print(f"set up in {time.monotonic() - began:.0f} s; load average {load_before[0]:.1f} before")
        since = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5 + p.real(p.warmup_minutes * 60))
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5 + p.real(p.minutes * 60))
        run_began = time.monotonic()
        day.run(callers_drawn, drain_s=p.real(p.talk_s) * 8 + p.real(p.patience_s) * 4 + 10)
        print(
            f"arrivals and drain took {time.monotonic() - run_began:.0f} s; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        time.sleep(2)  # the last CDRs are closed a moment after their BYE
        report(day, p, since, until, callers_drawn)
    finally:
        if day is not None:
            day.stop()
        pool.stop()
        if registrar is not None:
            registrar.terminate()
            registrar.wait(10)
        client.close()
        engine.dispose()
    print(f"total {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
