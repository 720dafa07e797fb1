"""Call statistics read from SQL: today, the last 15 minutes, and staffing advice for the wallboard."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from acd.models import Call, SeatEvent
from acd.staffing import Load, seats_needed
from acd.stats import CallRecord, CallStats, compute

LOCAL = ZoneInfo("Asia/Shanghai")
TARGET_S = 15.0  # GB/T 33358: a person answers within 15 s
TARGET_LEVEL = 0.8
CONNECTION_TARGET = 0.95


def call_records(session: Session, since: dt.datetime, until: dt.datetime) -> list[CallRecord]:
    rows = session.execute(
        select(Call.queued_at, Call.agent_answered_at, Call.ended_at).where(
            Call.queued_at.is_not(None), Call.queued_at >= since, Call.queued_at < until
        )
    ).all()
    return [CallRecord(q, a, e) for q, a, e in rows if q is not None]


def wrap_up_mean_s(session: Session, since: dt.datetime, until: dt.datetime) -> float:
    """Mean time seats spent in wrap-up (话后处理), from consecutive seat events."""
    events = session.execute(
        select(SeatEvent.seat_id, SeatEvent.at, SeatEvent.to_state)
        .where(SeatEvent.at >= since, SeatEvent.at < until)
        .order_by(SeatEvent.seat_id, SeatEvent.at, SeatEvent.id)
    ).all()
    spans: list[float] = []
    for (seat, at, state), (next_seat, next_at, _) in zip(events, events[1:], strict=False):
        if state == "wrap_up" and next_seat == seat:
            spans.append((next_at - at).total_seconds())
    return sum(spans) / len(spans) if spans else 0.0


def stats_between(session: Session, since: dt.datetime, until: dt.datetime) -> CallStats:
    return compute(
        call_records(session, since, until),
        window_s=(until - since).total_seconds(),
        target_s=TARGET_S,
        wrap_up_mean_s=wrap_up_mean_s(session, since, until),
    )


def _figures(stats: CallStats) -> dict[str, Any]:
    figures = asdict(stats)
    if stats.patience_s is not None and math.isinf(stats.patience_s):
        figures["patience_s"] = None  # nobody gave up: JSON has no infinity
    return figures


def wallboard_figures(session: Session, now: dt.datetime) -> dict[str, Any]:
    """Today's and the last quarter hour's figures, alerts, and seats needed at the last hour's load."""
    midnight = now.astimezone(LOCAL).replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
    today = stats_between(session, midnight, now)
    recent = stats_between(session, now - dt.timedelta(minutes=15), now)
    hour = stats_between(session, now - dt.timedelta(hours=1), now)
    alerts = []
    if recent.service_level is not None and recent.service_level < TARGET_LEVEL:
        alerts.append(f"近15分钟15秒接通率 {recent.service_level:.0%}，低于 {TARGET_LEVEL:.0%}")
    if today.connection_rate is not None and today.connection_rate < CONNECTION_TARGET:
        alerts.append(f"今日接通率 {today.connection_rate:.0%}，低于 {CONNECTION_TARGET:.0%}")
    advice = None
    if hour.calls_per_hour > 0 and hour.aht_s:
        load = Load(hour.calls_per_hour, hour.aht_s, hour.patience_s or math.inf)
        try:
            forecast = seats_needed(load, TARGET_S, TARGET_LEVEL)
            advice = {
                "seats": forecast.seats,
                "calls_per_hour": round(hour.calls_per_hour, 1),
                "aht_s": round(hour.aht_s, 1),
                "expected_service_level": round(forecast.service_level, 3),
                "model": "Erlang A" if math.isfinite(load.patience_s) else "Erlang C",
            }
        except ValueError:
            advice = None
    return {"today": _figures(today), "last_15_min": _figures(recent), "alerts": alerts, "staffing": advice}
