"""Department performance (no I/O): the rates a city ranks its departments by, and a weighted score.

Per department and period, from its shares of tickets (主办 and 协办 alike):
- on-time sign rate (及时签收率): signed by the sign deadline / dispatched;
- on-time completion rate (按时办结率): replied by the reply deadline / shares whose reply is due
  (replied, or past the deadline unreplied);
- return rate (回退率): returned / dispatched;
- reopen rate (重办率): reopened after a reply / replied;
- satisfaction rate (满意率): satisfied ratings / ratings (非常满意 and 满意 count as satisfied).
The score weighs the rates the city chooses (default: sign 20, completion 35, satisfaction 35,
and 10 for not returning or being reopened); a rate with no data leaves its weight out rather
than counting as zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DEFAULT_WEIGHTS = {"sign": 20.0, "completion": 35.0, "satisfaction": 35.0, "quality": 10.0}


@dataclass(frozen=True)
class Share:
    """One department's share of one ticket, as far as performance is concerned."""

    department_id: int
    assigned_at: dt.datetime
    sign_deadline: dt.datetime | None
    signed_at: dt.datetime | None
    reply_deadline: dt.datetime | None
    replied_at: dt.datetime | None
    returned: bool
    reopened: bool
    satisfied: bool | None  # None: not rated


@dataclass(frozen=True)
class Figures:
    department_id: int
    dispatched: int
    signed_on_time: int
    replies_due: int
    replied_on_time: int
    returned: int
    replied: int
    reopened: int
    rated: int
    satisfied: int
    sign_rate: float | None
    completion_rate: float | None
    return_rate: float | None
    reopen_rate: float | None
    satisfaction_rate: float | None
    score: float | None


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def figures_for(
    department_id: int,
    shares: Iterable[Share],
    now: dt.datetime,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
) -> Figures:
    dispatched = signed_on_time = due = on_time = returned = replied = reopened = rated = satisfied = 0
    for share in shares:
        dispatched += 1
        if share.signed_at and (share.sign_deadline is None or share.signed_at <= share.sign_deadline):
            signed_on_time += 1
        if share.returned:
            returned += 1
            continue
        if share.replied_at is not None:
            replied += 1
            reopened += share.reopened
        deadline_passed = share.reply_deadline is not None and share.reply_deadline < now
        if share.replied_at is not None or deadline_passed:
            due += 1
            if share.replied_at is not None and (
                share.reply_deadline is None or share.replied_at <= share.reply_deadline
            ):
                on_time += 1
        if share.satisfied is not None:
            rated += 1
            satisfied += share.satisfied
    rates = {
        "sign": _rate(signed_on_time, dispatched),
        "completion": _rate(on_time, due),
        "satisfaction": _rate(satisfied, rated),
    }
    return_rate, reopen_rate = _rate(returned, dispatched), _rate(reopened, replied)
    quality_parts = [1 - r for r in (return_rate, reopen_rate) if r is not None]
    rates["quality"] = sum(quality_parts) / len(quality_parts) if quality_parts else None
    return Figures(
        department_id=department_id,
        dispatched=dispatched,
        signed_on_time=signed_on_time,
        replies_due=due,
        replied_on_time=on_time,
        returned=returned,
        replied=replied,
        reopened=reopened,
        rated=rated,
        satisfied=satisfied,
        sign_rate=rates["sign"],
        completion_rate=rates["completion"],
        return_rate=return_rate,
        reopen_rate=reopen_rate,
        satisfaction_rate=rates["satisfaction"],
        score=score(rates, weights),
    )


def score(rates: Mapping[str, float | None], weights: Mapping[str, float]) -> float | None:
    """Weighted mean on a 0-100 scale over the rates that have data."""
    used = {k: w for k, w in weights.items() if rates.get(k) is not None and w > 0}
    total = sum(used.values())
    if not total:
        return None
    return round(100 * sum(w * (rates[k] or 0.0) for k, w in used.items()) / total, 1)


def rank(figures: Iterable[Figures]) -> list[Figures]:
    """Best score first; departments without a score last (nothing to judge them by)."""
    return sorted(figures, key=lambda f: (f.score is None, -(f.score or 0.0), f.department_id))
