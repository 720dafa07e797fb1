"""The CDR of an outbound call (direction "out"): opened when dialled, answered, closed with its result.

Runs on a worker's SQL thread (`ivr.offload`); one transaction each. A call still open when its
worker dies is closed as failed by `ivr.cdr.recover` when the worker starts again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from acd.models import Call, Disposition
from hotline.db import transaction


@dataclass(frozen=True)
class OutboundRow:
    call_id: str
    caller: str
    callee: str
    worker: str
    dialed_at: dt.datetime


def _get_or_add(session: Any, row: OutboundRow) -> Call:
    found = session.scalar(select(Call).where(Call.call_id == row.call_id))
    if found is None:
        fields = {k: v for k, v in asdict(row).items() if k != "dialed_at"}
        found = Call(direction="out", arrived_at=row.dialed_at, **fields)
        session.add(found)
    return found  # type: ignore[no-any-return]


def open_outbound(factory: Any, row: OutboundRow) -> None:
    """The CDR as soon as the call is placed: a worker that dies leaves it for `cdr.recover`."""
    with transaction(factory) as session:
        _get_or_add(session, row)


def answer_outbound(factory: Any, call_id: str, at: dt.datetime) -> None:
    with transaction(factory) as session:
        found = session.scalar(select(Call).where(Call.call_id == call_id))
        if found is not None:
            found.answered_at = at


def close_outbound(
    factory: Any,
    row: OutboundRow,
    ended_at: dt.datetime,
    disposition: Disposition,
    path: list[dict[str, Any]],
) -> None:
    with transaction(factory) as session:
        found = _get_or_add(session, row)
        found.ended_at, found.disposition, found.ivr_path = ended_at, disposition, path
