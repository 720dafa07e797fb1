"""Call statistics from CDRs (no I/O): service level, ASA, abandon rate, AHT, patience.

Definitions, as the measures section of DESIGN.md names them:
- offered: calls that asked for a person (entered a queue);
- short abandon: a caller who hung up within `short_abandon_s` of queueing; not counted as
  offered or abandoned (a misdial is not a lost citizen);
- answered within T: an agent answered within T seconds of queueing;
- service level = answered within T / (offered - short abandons);
- connection rate (接通率) = answered / (offered - short abandons);
- ASA: mean wait of answered calls; AHT: mean talk time plus mean wrap-up time;
- patience: the mean time callers are willing to wait, estimated as total waiting time of all
  callers divided by the number who abandoned (the maximum-likelihood estimate for exponential
  patience when answered callers' patience is censored at their wait).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class CallRecord:
    queued_at: dt.datetime
    agent_answered_at: dt.datetime | None
    ended_at: dt.datetime | None


@dataclass(frozen=True)
class CallStats:
    offered: int
    answered: int
    answered_within_target: int
    abandoned: int
    short_abandoned: int
    waiting_now: int
    service_level: float | None  # None when nothing was offered
    connection_rate: float | None
    asa_s: float | None
    aht_s: float | None
    patience_s: float | None
    calls_per_hour: float


def compute(
    calls: Iterable[CallRecord],
    *,
    window_s: float,
    target_s: float = 15.0,
    short_abandon_s: float = 5.0,
    wrap_up_mean_s: float = 0.0,
) -> CallStats:
    offered = answered = within = abandoned = short = waiting = 0
    waits: list[float] = []
    talks: list[float] = []
    total_wait = 0.0
    for call in calls:
        if call.agent_answered_at is not None:
            wait = (call.agent_answered_at - call.queued_at).total_seconds()
            offered += 1
            answered += 1
            within += wait <= target_s
            waits.append(wait)
            total_wait += wait
            if call.ended_at is not None:
                talks.append((call.ended_at - call.agent_answered_at).total_seconds())
        elif call.ended_at is None:
            waiting += 1  # still in the queue: not yet a result either way
        else:
            wait = (call.ended_at - call.queued_at).total_seconds()
            if wait < short_abandon_s:
                short += 1
                continue
            offered += 1
            abandoned += 1
            total_wait += wait
    return CallStats(
        offered=offered,
        answered=answered,
        answered_within_target=within,
        abandoned=abandoned,
        short_abandoned=short,
        waiting_now=waiting,
        service_level=within / offered if offered else None,
        connection_rate=answered / offered if offered else None,
        asa_s=sum(waits) / len(waits) if waits else None,
        aht_s=(sum(talks) / len(talks) + wrap_up_mean_s) if talks else None,
        patience_s=total_wait / abandoned if abandoned else (math.inf if offered else None),
        calls_per_hour=(offered + short) * 3600.0 / window_s if window_s > 0 else 0.0,
    )
