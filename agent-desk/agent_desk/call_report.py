"""Call figures per hour, day, quarter hour, queue or seat, aggregated in SQL from the CDRs.

The definitions are those of `acd.stats` (the wallboard's): a caller who hangs up within
`SHORT_ABANDON_S` of queueing is a short abandon, counted neither as offered nor as abandoned;
service level = answered within 15 s / offered; AHT = mean talk + mean wrap-up (话后处理).
Occupancy (占用率) = time handling calls (offered, talking, held, wrap-up) / that plus time ready,
from the seat state history.

Per seat, the queue figures (offered, answered, ASA, service level) are those of the calls the ACD
connected to it (`calls.seat_id`: the first agent), but AHT is the seat's own: its time talking
and holding per call it took (each time it went from offered to talking) plus its mean wrap-up,
from its state history. So a transferred call's handling time is split between the agents who
had it, as a seat's own state records say, not all given to the first one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from acd.models import Call, Seat, SeatEvent
from acd.reports import TARGET_S
from agent_desk.sqltime import local_bucket, local_quarter, seconds_between
from hotline.accounts import User

SHORT_ABANDON_S = 5.0
# Longer than any IVR walk before a caller queues; lets the arrived_at index bound the scan.
ARRIVAL_MARGIN = dt.timedelta(hours=6)
SHORT_WINDOW = dt.timedelta(days=2)
BUSY_STATES = ("offered", "talking", "held", "wrap_up")
# Queues are named by the skill they need (the IVR menu chooses one); the desk's names for them.
QUEUE_LABELS = {"general": "综合", "enterprise": "涉企专席", "dialect": "方言专席"}


def queue_names(seats: Iterable[Seat]) -> list[str]:
    """The known queues first, then any skill a seat has that the list does not name."""
    extra = sorted({skill for s in seats for skill in s.skills} - set(QUEUE_LABELS))
    return [*QUEUE_LABELS, *extra]


@dataclass(frozen=True)
class CallRow:
    key: str
    label: str
    offered: int
    answered: int
    within_target: int
    abandoned: int
    short_abandoned: int
    service_level: float | None
    connection_rate: float | None
    asa_s: float | None
    aht_s: float | None
    occupancy: float | None


@dataclass(frozen=True)
class SeatTime:
    """Seconds a seat spent in each state, how many wrap-ups it did and how many calls it took."""

    seconds: dict[str, float]
    wrap_ups: int
    calls: int = 0  # offered -> talking: every call it took, transfers and consultations included

    @property
    def occupancy(self) -> float | None:
        busy = sum(self.seconds.get(s, 0.0) for s in BUSY_STATES)
        total = busy + self.seconds.get("ready", 0.0)
        return busy / total if total > 0 else None

    @property
    def wrap_up_mean_s(self) -> float:
        return self.seconds.get("wrap_up", 0.0) / self.wrap_ups if self.wrap_ups else 0.0

    @property
    def handle_mean_s(self) -> float | None:
        """Talking and holding per call taken, plus the mean wrap-up: this seat's AHT."""
        if not self.calls:
            return None
        talk = self.seconds.get("talking", 0.0) + self.seconds.get("held", 0.0)
        return talk / self.calls + self.wrap_up_mean_s


def seat_times(session: Session, since: dt.datetime, until: dt.datetime) -> dict[int, SeatTime]:
    """Time in state per seat from consecutive seat events (the last span ends at `until`)."""
    spans = (
        select(
            SeatEvent.seat_id,
            SeatEvent.from_state,
            SeatEvent.to_state,
            SeatEvent.at,
            func.lead(SeatEvent.at)
            .over(partition_by=SeatEvent.seat_id, order_by=(SeatEvent.at, SeatEvent.id))
            .label("next_at"),
        )
        .where(SeatEvent.at >= since, SeatEvent.at < until)
        .subquery()
    )
    ends = func.coalesce(spans.c.next_at, literal(until, type_=SeatEvent.at.type))
    took = case((and_(spans.c.from_state == "offered", spans.c.to_state == "talking"), 1))
    rows = session.execute(
        select(
            spans.c.seat_id,
            spans.c.to_state,
            func.sum(seconds_between(ends, spans.c.at)),
            func.count(),
            func.count(took),
        ).group_by(spans.c.seat_id, spans.c.to_state)
    ).all()
    seconds_by: dict[int, dict[str, float]] = {}
    wrap_ups: dict[int, int] = {}
    calls: dict[int, int] = {}
    for seat_id, state, seconds, count, taken in rows:
        seconds_by.setdefault(seat_id, {})[state] = float(seconds or 0.0)
        if state == "wrap_up":
            wrap_ups[seat_id] = int(count)
        calls[seat_id] = calls.get(seat_id, 0) + int(taken)
    return {s: SeatTime(sec, wrap_ups.get(s, 0), calls.get(s, 0)) for s, sec in seconds_by.items()}


def _overall(times: dict[int, SeatTime]) -> SeatTime:
    seconds: dict[str, float] = {}
    for t in times.values():
        for state, s in t.seconds.items():
            seconds[state] = seconds.get(state, 0.0) + s
    return SeatTime(seconds, sum(t.wrap_ups for t in times.values()), sum(t.calls for t in times.values()))


def _figures() -> list[ColumnElement[Any]]:
    wait = seconds_between(Call.agent_answered_at, Call.queued_at)
    gave_up = seconds_between(Call.ended_at, Call.queued_at)
    answered = Call.agent_answered_at.is_not(None)
    hung_up = and_(Call.agent_answered_at.is_(None), Call.ended_at.is_not(None))
    return [
        func.count(case((answered, 1))).label("answered"),
        func.count(case((and_(answered, wait <= TARGET_S), 1))).label("within"),
        func.count(case((and_(hung_up, gave_up >= SHORT_ABANDON_S), 1))).label("abandoned"),
        func.count(case((and_(hung_up, gave_up < SHORT_ABANDON_S), 1))).label("short"),
        func.avg(case((answered, wait))).label("asa"),
        func.avg(
            case(
                (
                    and_(answered, Call.ended_at.is_not(None)),
                    seconds_between(Call.ended_at, Call.agent_answered_at),
                )
            )
        ).label("talk"),
    ]


def _calls_aht(r: Any, wrap_up_s: float) -> float | None:
    """AHT of a group of calls: their mean talk (from the CDRs) plus the mean wrap-up."""
    return float(r.talk) + wrap_up_s if r.talk is not None else None


def _row(key: str, label: str, r: Any, aht_s: float | None, occupancy: float | None) -> CallRow:
    """A row from the SQL figures `r`, with its AHT (the calls' or, per seat, the seat's own)."""
    answered, abandoned = int(r.answered), int(r.abandoned)
    offered = answered + abandoned
    return CallRow(
        key=key,
        label=label,
        offered=offered,
        answered=answered,
        within_target=int(r.within),
        abandoned=abandoned,
        short_abandoned=int(r.short),
        service_level=int(r.within) / offered if offered else None,
        connection_rate=answered / offered if offered else None,
        asa_s=float(r.asa) if r.asa is not None else None,
        aht_s=aht_s,
        occupancy=occupancy,
    )


def call_report(
    session: Session, since: dt.datetime, until: dt.datetime, by: str
) -> tuple[list[CallRow], CallRow]:
    """Rows grouped `by` "hour", "day", "quarter", "queue" or "agent", and the total row."""
    window = and_(Call.queued_at.is_not(None), Call.queued_at >= since, Call.queued_at < until)
    if until - since <= SHORT_WINDOW:
        # queued_at has no index; arrived_at has, and a caller queues minutes after arriving. For a
        # day or less (the wallboard, every refresh) the index pays; over a month a scan is faster.
        window = and_(window, Call.arrived_at >= since - ARRIVAL_MARGIN, Call.arrived_at < until)
    times = seat_times(session, since, until)
    overall = _overall(times)
    total = session.execute(select(*_figures()).where(window)).one()
    total_row = _row("", "合计", total, _calls_aht(total, overall.wrap_up_mean_s), overall.occupancy)
    key: Any
    if by in ("hour", "day"):
        key = local_bucket(Call.queued_at, by)
    elif by == "quarter":
        key = local_quarter(Call.queued_at)
    elif by == "queue":
        key = Call.queue
    elif by == "agent":
        key = Call.seat_id
    else:
        raise ValueError(f"unknown grouping {by!r}")
    grouped = session.execute(
        select(key.label("key"), *_figures()).where(window).group_by(key).order_by(key)
    ).all()
    if by == "agent":
        return _by_seat(session, grouped, times), total_row
    rows = []
    for r in grouped:
        label = (QUEUE_LABELS.get(r.key, r.key) or "未进队列") if by == "queue" else _time_label(r.key, by)
        rows.append(_row(str(r.key), label, r, _calls_aht(r, overall.wrap_up_mean_s), None))
    return rows, total_row


def _time_label(key: Any, by: str) -> str:
    if by == "quarter":
        minutes = int(key) * 15
        return f"{minutes // 60:02d}:{minutes % 60:02d}"
    return str(key)


def _by_seat(session: Session, grouped: Sequence[Any], times: dict[int, SeatTime]) -> list[CallRow]:
    """One row per seat that took calls or worked in the period, labelled with its agent."""
    names = {
        seat_id: f"{extension} {agent or ''}".strip()
        for seat_id, extension, agent in session.execute(
            select(Seat.id, Seat.extension, User.display_name).outerjoin(User, User.id == Seat.agent_id)
        )
    }
    by_seat = {r.key: r for r in grouped if r.key is not None}
    rows = []
    for seat_id in sorted(set(by_seat) | set(times), key=lambda s: names.get(s, "")):
        t = times.get(seat_id, SeatTime({}, 0))
        r = by_seat.get(seat_id)
        if r is None:
            r = _Empty()
        rows.append(_row(str(seat_id), names.get(seat_id, str(seat_id)), r, t.handle_mean_s, t.occupancy))
    return rows


class _Empty:
    """A seat that worked but took no call in the period."""

    answered = within = abandoned = short = 0
    asa = talk = None
