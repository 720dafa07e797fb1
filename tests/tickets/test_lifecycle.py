"""The work-order lifecycle: every path of DESIGN.md works, anything else is refused clearly."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from tickets.lifecycle import Action, TransitionError, allowed_actions, next_status
from tickets.models import Channel, Department, DepartmentKind, Ticket, TicketEvent
from tickets.models import TicketStatus as S
from tickets.service import apply, create_ticket

A = Action
HAPPY = [A.DISPATCH, A.SIGN, A.START, A.REPLY, A.APPROVE_REPLY, A.REVISIT, A.CLOSE]


def _walk(actions: list[Action], start: S = S.ACCEPTED) -> S:
    status = start
    for action in actions:
        status = next_status(status, action)
    return status


@pytest.mark.parametrize(
    ("actions", "end"),
    [
        (HAPPY, S.CLOSED),
        ([A.RESOLVE_DIRECTLY, A.REVISIT, A.CLOSE], S.CLOSED),  # 直接办结
        ([A.DISPATCH, A.RETURN, A.REDISPATCH, A.SIGN], S.SIGNED),  # 退单 and 改派
        ([A.DISPATCH, A.SIGN, A.REPLY, A.REJECT_REPLY, A.REPLY], S.REPLIED),  # 退回重办
        ([A.DISPATCH, A.SIGN, A.REPLY, A.APPROVE_REPLY, A.REVISIT, A.REOPEN], S.DISPATCHED),  # 重办
        ([A.DISPATCH, A.MERGE], S.MERGED),  # 并单
        ([A.DISPATCH, A.URGE, A.SIGN, A.REQUEST_EXTENSION, A.APPROVE_EXTENSION, A.SUPERVISE], S.SIGNED),
    ],
)
def test_the_paths_of_the_lifecycle(actions: list[Action], end: S) -> None:
    assert _walk(actions) == end


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (S.ACCEPTED, A.SIGN),  # nothing to sign before dispatch
        (S.CLOSED, A.REPLY),
        (S.CLOSED, A.NOTE),
        (S.MERGED, A.DISPATCH),
        (S.ACCEPTED, A.URGE),  # no department to urge yet
        (S.REPLIED, A.RETURN),
    ],
)
def test_a_transition_not_in_the_table_is_refused_with_a_clear_error(status: S, action: Action) -> None:
    with pytest.raises(TransitionError) as err:
        next_status(status, action)
    assert f"'{action.value}'" in str(err.value) and f"'{status.value}'" in str(err.value)


def test_every_status_but_the_final_ones_has_a_way_forward() -> None:
    for status in S:
        assert bool(allowed_actions(status) - {A.NOTE}) == (status not in {S.CLOSED, S.MERGED}), status


def test_creating_and_moving_a_ticket_leaves_its_history(db: sessionmaker[Session]) -> None:
    now = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    with transaction(db) as session:
        dept = Department(code="housing", name="市住房和城乡建设局", kind=DepartmentKind.BUREAU)
        session.add(dept)
        session.flush()
        ticket = create_ticket(
            session, channel=Channel.PHONE, content="小区路灯不亮", caller_phone="13800000000", now=now
        )
        apply(session, ticket, A.DISPATCH, department_id=dept.id, note="按派单目录", now=now)
        apply(session, ticket, A.SIGN, now=now)
        number = ticket.number
        with pytest.raises(TransitionError):
            apply(session, ticket, A.CLOSE, now=now)
    assert number == "20261127-0001"
    with db() as session:
        stored = session.scalars(select(Ticket)).one()
        assert stored.status is S.SIGNED and stored.department_id is not None
        history = session.scalars(select(TicketEvent).order_by(TicketEvent.id)).all()
        assert [(e.action, e.from_status, e.to_status) for e in history] == [
            ("accept", None, S.ACCEPTED),
            ("dispatch", S.ACCEPTED, S.DISPATCHED),
            ("sign", S.DISPATCHED, S.SIGNED),
        ]


def test_dispatch_needs_a_department(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        ticket = create_ticket(session, channel=Channel.PORTAL, content="噪音扰民")
        with pytest.raises(ValueError, match="department"):
            apply(session, ticket, A.DISPATCH)


WRITER = textwrap.dedent(
    """
    import sys, datetime as dt
    from hotline.db import make_engine, make_session_factory, transaction
    from tickets.models import Channel
    from tickets.service import create_ticket
    factory = make_session_factory(make_engine(sys.argv[1]))
    now = dt.datetime(2026, 11, 27, 3, 0, tzinfo=dt.UTC)
    for i in range(25):
        with transaction(factory) as session:
            create_ticket(session, channel=Channel.PORTAL, content=f"{sys.argv[2]}-{i}", now=now)
    """
)


def test_numbers_stay_unique_when_processes_create_tickets_at_once(
    db: sessionmaker[Session], database_url: str
) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, database_url, f"w{n}"], env=env, stderr=subprocess.PIPE
        )
        for n in range(4)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
    with db() as session:
        numbers = sorted(session.scalars(select(Ticket.number)))
    assert numbers == [f"20261127-{n:04d}" for n in range(1, 101)]
