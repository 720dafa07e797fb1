"""How many seats a service level needs: Erlang C, and Erlang A with callers who give up.

Erlang C (M/M/n) assumes nobody abandons and overstates the seats needed when callers do;
Erlang A (M/M/n+M, Palm) adds exponential patience. Both are computed from the measured
arrival rate, average handling time (AHT) and, for Erlang A, average patience. No I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Load:
    calls_per_hour: float
    aht_s: float  # talk + hold + wrap-up
    patience_s: float = math.inf  # mean time a caller waits before hanging up (Erlang A)

    @property
    def erlangs(self) -> float:
        return self.calls_per_hour * self.aht_s / 3600.0


@dataclass(frozen=True)
class Forecast:
    seats: int
    service_level: float  # answered within the target time / offered
    wait_probability: float
    asa_s: float  # average speed of answer (of answered calls)
    abandon_rate: float  # abandoned / offered
    occupancy: float


def erlang_c(seats: int, erlangs: float) -> float:
    """Probability that a caller waits (Erlang C), computed stably through Erlang B."""
    if erlangs <= 0:
        return 0.0
    if seats <= erlangs:
        return 1.0
    b = 1.0
    for k in range(1, seats + 1):
        b = erlangs * b / (k + erlangs * b)
    return seats * b / (seats - erlangs * (1 - b))


def forecast_c(load: Load, seats: int, target_s: float) -> Forecast:
    a = load.erlangs
    pw = erlang_c(seats, a)
    if seats <= a:
        return Forecast(seats, 0.0, 1.0, math.inf, 0.0, 1.0)
    rate = (seats - a) / load.aht_s
    return Forecast(
        seats=seats,
        service_level=1 - pw * math.exp(-rate * target_s),
        wait_probability=pw,
        asa_s=pw / rate,
        abandon_rate=0.0,
        occupancy=a / seats,
    )


def forecast_a(load: Load, seats: int, target_s: float, max_queue: int = 2000) -> Forecast:
    """Erlang A from the birth-death chain of calls in the system, and the tagged caller's wait."""
    if math.isinf(load.patience_s):
        return forecast_c(load, seats, target_s)
    lam, mu, theta = load.calls_per_hour / 3600.0, 1.0 / load.aht_s, 1.0 / load.patience_s
    # Stationary probabilities p[k] of k calls in the system (k <= seats + max_queue), unnormalised,
    # in log space so that long chains do not overflow.
    logp = [0.0]
    for k in range(1, seats + max_queue + 1):
        death = min(k, seats) * mu + max(0, k - seats) * theta
        logp.append(logp[-1] + math.log(lam) - math.log(death))
    top = max(logp)
    p = [math.exp(x - top) for x in logp]
    total = sum(p)
    p = [x / total for x in p]
    # By PASTA, an arriving caller sees k in the system with probability p[k].
    wait_probability = sum(p[seats:])
    queue_length = sum((k - seats) * p[k] for k in range(seats, len(p)))
    abandon_rate = theta * queue_length / lam
    served_within, served_total, wait_of_served = 0.0, 0.0, 0.0
    for k in range(len(p) - 1):
        if p[k] < 1e-12 and k > seats:
            continue  # too unlikely to matter; keeps long chains cheap
        if k < seats:
            served_within += p[k]
            served_total += p[k]
            continue
        within, served, mean_wait = _tagged(k - seats + 1, seats * mu, theta, target_s)
        served_within += p[k] * within
        served_total += p[k] * served
        wait_of_served += p[k] * mean_wait
    busy = sum(min(k, seats) * x for k, x in enumerate(p)) / seats
    return Forecast(
        seats=seats,
        service_level=served_within,
        wait_probability=wait_probability,
        asa_s=wait_of_served / served_total if served_total else math.inf,
        abandon_rate=abandon_rate,
        occupancy=busy,
    )


def _tagged(ahead: int, service_rate: float, theta: float, target_s: float) -> tuple[float, float, float]:
    """A caller with `ahead` moves to go: P(served within target), P(served), E[wait; served].

    Each move (a seat frees up, or someone ahead gives up) happens at rate service_rate + j*theta
    with j callers still ahead; the caller's own patience runs out at rate theta meanwhile.
    """
    served, mean_wait = 1.0, 0.0
    rates = []
    for j in range(ahead - 1, -1, -1):
        move = service_rate + j * theta
        served *= move / (move + theta)
        mean_wait += 1.0 / (move + theta)
        rates.append(move + theta)
    # Served within the target: all moves done before target and before patience. The time to
    # finish all moves (given no abandonment) is hypoexponential with these rates.
    within = served * _hypoexp_cdf(rates, target_s)
    return within, served, served * mean_wait


def _hypoexp_cdf(rates: list[float], t: float) -> float:
    """P(sum of independent exponentials with `rates` <= t), by uniformisation."""
    if not rates:
        return 1.0
    big = max(rates)
    # Stay in phase i with prob 1 - rate_i/big per tick, move on with rate_i/big.
    steps_mean = big * t
    n_max = int(steps_mean + 10 * math.sqrt(steps_mean + 1) + 20)
    dist = [0.0] * (len(rates) + 1)
    dist[0] = 1.0
    log_weight = -steps_mean
    cdf = 0.0
    for n in range(n_max + 1):
        if n:
            log_weight += math.log(steps_mean) - math.log(n) if steps_mean > 0 else -math.inf
            nxt = [0.0] * (len(rates) + 1)
            for i, mass in enumerate(dist):
                if i == len(rates):
                    nxt[i] += mass
                    continue
                go = rates[i] / big
                nxt[i] += mass * (1 - go)
                nxt[i + 1] += mass * go
            dist = nxt
        cdf += math.exp(log_weight) * dist[-1] if log_weight > -745 else 0.0
    return min(1.0, cdf)


def seats_needed(
    load: Load, target_s: float, service_level: float, *, model: str = "A", cap: int = 500
) -> Forecast:
    """The fewest seats that reach `service_level` answered within `target_s`."""
    forecast = forecast_a if model.upper() == "A" else forecast_c
    start = max(1, math.floor(load.erlangs) if model.upper() == "C" else 1)
    for seats in range(start, cap + 1):
        result = forecast(load, seats, target_s)
        if result.service_level >= service_level:
            return result
    raise ValueError(f"no staffing up to {cap} seats reaches {service_level:.0%} within {target_s:.0f}s")
