"""Service level, connection rate, ASA, AHT and patience from CDRs, as the wallboard shows them."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Call, Disposition, Seat, SeatEvent
from acd.reports import wallboard_figures
from acd.stats import CallRecord, compute
from hotline.db import transaction

T0 = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai


def _at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


CALLS = [
    CallRecord(_at(0), _at(5), _at(185)),  # answered in 5 s, talked 3 min
    CallRecord(_at(10), _at(40), _at(160)),  # answered in 30 s
    CallRecord(_at(20), None, _at(22)),  # hung up after 2 s: a short abandon
    CallRecord(_at(30), None, _at(90)),  # gave up after 60 s
    CallRecord(_at(50), None, None),  # still waiting
]


def test_the_measures_follow_their_definitions() -> None:
    stats = compute(CALLS, window_s=3600, target_s=15, short_abandon_s=5, wrap_up_mean_s=20)
    assert (stats.offered, stats.answered, stats.answered_within_target) == (3, 2, 1)
    assert (stats.abandoned, stats.short_abandoned, stats.waiting_now) == (1, 1, 1)
    assert stats.service_level == pytest.approx(1 / 3)
    assert stats.connection_rate == pytest.approx(2 / 3)
    assert stats.asa_s == pytest.approx(17.5)
    assert stats.aht_s == pytest.approx((180 + 120) / 2 + 20)
    assert stats.patience_s == pytest.approx((5 + 30 + 60) / 1)
    assert stats.calls_per_hour == pytest.approx(4)


def test_no_calls_means_no_figures_rather_than_zero_percent() -> None:
    stats = compute([], window_s=900)
    assert stats.service_level is None and stats.asa_s is None and stats.calls_per_hour == 0
    only_answered = compute([CallRecord(_at(0), _at(3), _at(60))], window_s=900)
    assert only_answered.service_level == 1.0 and math.isinf(only_answered.patience_s or 0)


def test_wallboard_figures_alerts_and_staffing_from_sql(db: sessionmaker[Session]) -> None:
    now = _at(3600)
    with transaction(db) as session:
        seat = Seat(extension="8001", sip_password="x", skills={"general": 1})
        session.add(seat)
        session.flush()
        for n in range(40):  # 40 calls in the last hour: half answered late, some abandoned
            start = now - dt.timedelta(minutes=59) + dt.timedelta(seconds=n * 80)
            answered = start + dt.timedelta(seconds=40 if n % 2 else 8) if n % 5 else None
            ended = (answered or start + dt.timedelta(seconds=70)) + dt.timedelta(
                seconds=240 if answered else 0
            )
            session.add(
                Call(
                    call_id=f"c{n}",
                    caller="1380000",
                    arrived_at=start,
                    queued_at=start,
                    queue="general",
                    agent_answered_at=answered,
                    ended_at=ended,
                    disposition=Disposition.ANSWERED,
                )
            )
        session.add_all(
            [
                SeatEvent(
                    seat_id=seat.id,
                    at=now - dt.timedelta(minutes=30),
                    from_state="talking",
                    to_state="wrap_up",
                ),
                SeatEvent(
                    seat_id=seat.id,
                    at=now - dt.timedelta(minutes=29, seconds=30),
                    from_state="wrap_up",
                    to_state="ready",
                ),
            ]
        )
    with db() as session:
        figures = wallboard_figures(session, now)
    today = figures["today"]
    assert today["offered"] == 40 and today["answered"] == 32 and today["abandoned"] == 8
    assert today["service_level"] == pytest.approx(16 / 40)
    assert today["aht_s"] == pytest.approx(240 + 30)
    assert any("15秒接通率" in alert for alert in figures["alerts"])
    assert any("今日接通率" in alert for alert in figures["alerts"])
    staffing = figures["staffing"]
    assert (
        staffing["model"] == "Erlang A"
        and staffing["seats"] >= 3
        and staffing["expected_service_level"] >= 0.8
    )
