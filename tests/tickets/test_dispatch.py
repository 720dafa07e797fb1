"""派单 with lead and assisting departments, their steps, deadlines on the ticket, 延期, 退单 and 改派."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.accounts import AuditEntry
from hotline.db import transaction
from tickets import deadlines, dispatch, inbox, sla
from tickets.lifecycle import Action, TransitionError
from tickets.models import (
    AssignmentRole,
    AssignmentState,
    Channel,
    ExtensionRequest,
    RequestKind,
    Ticket,
    TicketAssignment,
    TicketEvent,
    TicketStatus,
    Urgency,
)
from tickets.service import apply, create_ticket

LOCAL = deadlines.LOCAL
# Wednesday 2026-09-30 10:00 in 六盘水, the day before the National Day holiday.
DISPATCHED = dt.datetime(2026, 9, 30, 10, 0, tzinfo=LOCAL)


def _new(session: Session, **fields: object) -> Ticket:
    return create_ticket(
        session, channel=Channel.PHONE, content="楼下工地夜间施工噪音", now=DISPATCHED, **fields
    )  # type: ignore[arg-type]


def test_dispatch_stores_the_sign_and_reply_deadlines_across_the_holiday(
    db: sessionmaker[Session], departments: dict[str, int]
) -> None:
    with transaction(db) as session:
        consult = _new(session, request_kind=RequestKind.CONSULT, category_code="040101")
        dispatch.dispatch(session, consult, departments["ecology"], now=DISPATCHED)
        water = _new(session, request_kind=RequestKind.COMPLAINT, category_code="020101")
        dispatch.dispatch(session, water, departments["water-supply"], now=DISPATCHED)
        gas = _new(session, urgency=Urgency.EMERGENCY, category_code="020302")
        dispatch.dispatch(session, gas, departments["gas"], now=DISPATCHED)
    assert consult.status is TicketStatus.DISPATCHED and consult.dispatched_at == DISPATCHED
    assert consult.sign_deadline_at == dt.datetime(2026, 10, 8, 23, 59, 59, tzinfo=LOCAL)
    assert consult.deadline_at == dt.datetime(2026, 10, 10, 23, 59, 59, tzinfo=LOCAL)  # 3 working days
    assert water.deadline_at == dt.datetime(2026, 10, 1, 10, 0, tzinfo=LOCAL)  # 供水: 24 h
    assert gas.deadline_at == dt.datetime(2026, 9, 30, 12, 0, tzinfo=LOCAL)  # 特急: 2 h
    with db() as session:
        stored = session.get_one(Ticket, consult.id)
        assert stored.deadline_at == consult.deadline_at and stored.urgency is Urgency.NORMAL


def test_the_lead_completes_only_after_every_assisting_department_answered(
    db: sessionmaker[Session], departments: dict[str, int]
) -> None:
    housing, ecology, urban = departments["housing"], departments["ecology"], departments["urban-management"]
    with transaction(db) as session:
        ticket = _new(session, category_code="040101")
        dispatch.dispatch(session, ticket, housing, [ecology, urban, housing], now=DISPATCHED)
        shares = {s.department_id: s for s in dispatch.assignments(session, ticket)}
        assert {d: s.role for d, s in shares.items()} == {
            housing: AssignmentRole.LEAD,
            ecology: AssignmentRole.ASSIST,
            urban: AssignmentRole.ASSIST,
        }
        dispatch.sign(session, ticket, housing)
        dispatch.sign(session, ticket, ecology)
        assert ticket.status is TicketStatus.SIGNED  # an assisting signature does not move the ticket
        with pytest.raises(dispatch.DispatchError, match="请先签收再答复"):
            dispatch.reply(session, ticket, urban, "已巡查")
        with pytest.raises(dispatch.DispatchError, match="协办单位尚未答复：市生态环境局、市综合行政执法局"):
            dispatch.reply(session, ticket, housing, "已责令停止夜间施工")
        dispatch.reply(session, ticket, ecology, "已监测，夜间噪声超标")
        dispatch.return_(
            session, ticket, urban, "不属于本单位职责"
        )  # an assisting return also frees the lead
        with pytest.raises(dispatch.DispatchError, match="本单位已答复"):
            dispatch.reply(session, ticket, ecology, "再次答复")
        dispatch.reply(session, ticket, housing, "已责令停止夜间施工")
        assert ticket.status is TicketStatus.REPLIED
        assert (
            shares[ecology].reply == "已监测，夜间噪声超标"
            and shares[urban].state is AssignmentState.RETURNED
        )
        assert shares[housing].state is AssignmentState.REPLIED
        # 退回重办 by the centre: the lead's share follows the ticket back to work.
        apply(session, ticket, Action.REJECT_REPLY, note="答复不完整")
        session.flush()
        session.refresh(shares[housing])
        assert shares[housing].state is AssignmentState.SIGNED
        history = [
            e.action for e in session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id))
        ]
        assert (
            history
            == "accept dispatch sign assist_sign assist_reply assist_return reply reject_reply".split()
        )
        audited = session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_id == ticket.number)
        ).all()
        assert audited == [f"ticket.{a}" for a in history[1:]]


def test_a_department_cannot_act_on_a_ticket_not_sent_to_it(
    db: sessionmaker[Session], departments: dict[str, int]
) -> None:
    with transaction(db) as session:
        ticket = _new(session, category_code="010101")
        dispatch.dispatch(session, ticket, departments["housing"], now=DISPATCHED)
        with pytest.raises(dispatch.DispatchError, match="未派给本单位"):
            dispatch.sign(session, ticket, departments["gas"])
        dispatch.sign(session, ticket, departments["housing"])
        with pytest.raises(TransitionError) as refused:
            dispatch.sign(session, ticket, departments["housing"])
        assert refused.value.status is TicketStatus.SIGNED and refused.value.action is Action.SIGN


def test_a_return_then_redispatch_moves_the_ticket_to_another_department(
    db: sessionmaker[Session], departments: dict[str, int]
) -> None:
    later = DISPATCHED + dt.timedelta(days=9)  # 2026-10-09, a working day
    with transaction(db) as session:
        ticket = _new(session, category_code="010101")
        dispatch.dispatch(session, ticket, departments["housing"], now=DISPATCHED)
        with pytest.raises(dispatch.DispatchError, match="请填写退单理由"):
            dispatch.return_(session, ticket, departments["housing"], "  ")
        dispatch.return_(session, ticket, departments["housing"], "路灯属城市管理部门维护")
        assert ticket.status is TicketStatus.RETURNED
        dispatch.dispatch(session, ticket, departments["urban-management"], now=later)
        assert (
            ticket.status is TicketStatus.DISPATCHED
            and ticket.department_id == departments["urban-management"]
        )
        assert ticket.sign_deadline_at == dt.datetime(
            2026, 10, 10, 23, 59, 59, tzinfo=LOCAL
        )  # fresh deadlines
        active = session.scalars(
            select(TicketAssignment.department_id).where(
                TicketAssignment.ticket_id == ticket.id, TicketAssignment.active
            )
        ).all()
        assert active == [departments["urban-management"]]
        last = session.scalars(select(TicketEvent).order_by(TicketEvent.id.desc())).first()
        assert last is not None and last.action == "redispatch" and "市综合行政执法局" in last.note


def test_an_extension_asked_in_time_and_approved_moves_the_deadline(
    db: sessionmaker[Session], departments: dict[str, int]
) -> None:
    housing = departments["housing"]
    asked = dt.datetime(2026, 10, 9, 9, 0, tzinfo=LOCAL)
    with transaction(db) as session:
        ticket = _new(session, request_kind=RequestKind.CONSULT, category_code="010201")
        dispatch.dispatch(session, ticket, housing, now=DISPATCHED)
        dispatch.sign(session, ticket, housing, now=DISPATCHED)
        with pytest.raises(dispatch.DispatchError, match="晚于当前办结时限"):
            dispatch.request_extension(
                session, ticket, housing, "需要现场勘查", dt.date(2026, 10, 9), now=asked
            )
        request = dispatch.request_extension(
            session, ticket, housing, "需要物业公司配合整改", dt.date(2026, 10, 16), now=asked
        )
        with pytest.raises(dispatch.DispatchError, match="已有待审核的延期申请"):
            dispatch.request_extension(session, ticket, housing, "再申请", dt.date(2026, 10, 19), now=asked)
        assert ticket.deadline_at == dt.datetime(2026, 10, 10, 23, 59, 59, tzinfo=LOCAL)  # not yet moved
        dispatch.decide_extension(session, request, approve=True, now=asked)
        assert ticket.deadline_at == dt.datetime(2026, 10, 16, 23, 59, 59, tzinfo=LOCAL)
        assert request.old_deadline_at == dt.datetime(2026, 10, 10, 23, 59, 59, tzinfo=LOCAL)
        with pytest.raises(dispatch.DispatchError, match="已处理"):
            dispatch.decide_extension(session, request, approve=False, now=asked)
        late = dt.datetime(2026, 10, 17, 9, 0, tzinfo=LOCAL)
        with pytest.raises(dispatch.DispatchError, match="已超过办结时限"):
            dispatch.request_extension(session, ticket, housing, "还需时间", dt.date(2026, 10, 20), now=late)
    with db() as session:
        notes = session.scalars(select(TicketEvent.note).where(TicketEvent.action.like("%extension"))).all()
        assert notes == ["申请延期至 2026-10-16：需要物业公司配合整改", "同意延期至 2026-10-16"]
        assert session.scalars(select(ExtensionRequest.state)).all() == ["approved"]


def test_overdue_tickets_are_found_for_the_missed_deadline(
    db: sessionmaker[Session], departments: dict[str, int]
) -> None:
    housing = departments["housing"]
    with transaction(db) as session:
        unsigned, late, on_time, replied = (_new(session, category_code="010101") for _ in range(4))
        for ticket in (unsigned, late, on_time, replied):
            dispatch.dispatch(session, ticket, housing, now=DISPATCHED)
        for ticket in (late, on_time, replied):
            dispatch.sign(session, ticket, housing, now=DISPATCHED)
        dispatch.reply(session, replied, housing, "已修复", now=DISPATCHED)
        on_time.deadline_at = dt.datetime(2026, 10, 30, 23, 59, 59, tzinfo=LOCAL)  # as if extended
        # 2026-10-09: the sign deadline (10-08) has passed; 5 working days (10-13) have not.
        found = sla.overdue(session, dt.datetime(2026, 10, 9, 9, 0, tzinfo=LOCAL))
        assert [(o.ticket.id, o.missed) for o in found] == [(unsigned.id, sla.Missed.SIGN)]
        # 2026-10-14: every reply not given by the 13th is late.
        found = sla.overdue(session, dt.datetime(2026, 10, 14, 9, 0, tzinfo=LOCAL), department_id=housing)
        assert [(o.ticket.id, o.missed) for o in found] == [
            (unsigned.id, sla.Missed.REPLY),
            (late.id, sla.Missed.REPLY),
        ]


def test_a_dispatch_through_apply_alone_reaches_the_department_with_deadlines(
    db: sessionmaker[Session], departments: dict[str, int]
) -> None:
    """What the agent desk does: `apply(DISPATCH)` without `tickets.dispatch`; and 重办 after a revisit."""
    housing, ecology = departments["housing"], departments["ecology"]
    with transaction(db) as session:
        ticket = _new(session, category_code="010201")
        apply(session, ticket, Action.DISPATCH, department_id=housing, now=DISPATCHED)
        assert ticket.deadline_at == dt.datetime(
            2026, 10, 13, 23, 59, 59, tzinfo=LOCAL
        )  # 求助: 5 working days
        rows = inbox.listing(session, housing, inbox.View.TO_SIGN, DISPATCHED)
        assert [r.ticket.number for r in rows] == [ticket.number]
        assert rows[0].share.role is AssignmentRole.LEAD
        apply(session, ticket, Action.RETURN, department_id=housing)
        dispatch.dispatch(session, ticket, housing, [ecology], now=DISPATCHED)
        dispatch.sign(session, ticket, ecology)
        dispatch.reply(session, ticket, ecology, "已监测")
        dispatch.sign(session, ticket, housing)
        dispatch.reply(session, ticket, housing, "已处理")
        for action in (Action.APPROVE_REPLY, Action.REVISIT):
            apply(session, ticket, action)
        reopened = dt.datetime(2026, 10, 19, 9, 0, tzinfo=LOCAL)  # a Monday; the citizen is not satisfied
        apply(session, ticket, Action.REOPEN, note="市民不满意", now=reopened)
        shares = {a.department_id: a for a in dispatch.assignments(session, ticket)}
        assert ticket.status is TicketStatus.DISPATCHED and ticket.department_id == housing
        assert {d: (a.role, a.state) for d, a in shares.items()} == {
            housing: (AssignmentRole.LEAD, AssignmentState.DISPATCHED),
            ecology: (AssignmentRole.ASSIST, AssignmentState.DISPATCHED),
        }
        assert ticket.deadline_at == dt.datetime(2026, 10, 26, 23, 59, 59, tzinfo=LOCAL)
