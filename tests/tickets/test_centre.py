"""The centre's pages: review replies and returns, decide extensions, merge duplicates, 催办/督办."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Call
from hotline.accounts import AuditEntry
from hotline.db import transaction
from tickets import dispatch
from tickets.models import Ticket, TicketAssignment, TicketEvent, TicketStatus
from tickets.models_outcomes import Notification, RevisitTask

Login = Callable[[str], FlaskClient]


def _ticket(db: sessionmaker[Session], number: str) -> Ticket:
    with db() as session:
        return session.scalars(select(Ticket).where(Ticket.number == number)).one()


def _step(db: sessionmaker[Session], number: str, step: Callable[[Session, Ticket], object]) -> None:
    with transaction(db) as session:
        step(session, session.scalars(select(Ticket).where(Ticket.number == number)).one())


def _shown(client: FlaskClient, number: str) -> dict[str, str]:
    """The CSRF token and ticket version the centre's page of the ticket carries in its forms."""
    page = client.get(f"/centre/tickets/{number}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    version = re.search(r'name="version" value="(\d+)"', page)
    assert token is not None and version is not None, page
    return {"csrf_token": token[1], "version": version[1]}


def _post(
    client: FlaskClient, number: str, path: str, shown: dict[str, str] | None = None, **data: str
) -> tuple[int, str]:
    """Post a form of the ticket's page (as just rendered, unless an earlier `shown` is given)."""
    form = {**(shown or _shown(client, number)), **data}
    response = client.post(f"/centre/tickets/{number}/{path}", data=form, follow_redirects=True)
    return response.status_code, response.get_data(as_text=True)


def test_a_reply_is_sent_back_with_a_reason_then_approved_and_the_revisit_scheduled(
    db: sessionmaker[Session], login: Login, make_ticket: Callable[..., str], departments: dict[str, int]
) -> None:
    number = make_ticket("housing")
    housing = departments["housing"]
    _step(db, number, lambda s, t: dispatch.sign(s, t, housing))
    _step(db, number, lambda s, t: dispatch.reply(s, t, housing, "已派人查看"))
    agent = login("agent1")
    listing = agent.get("/centre/").get_data(as_text=True)
    assert number in listing and "已派人查看" in listing

    status, page = _post(agent, number, "review", decision="reject")
    assert status == 409 and "退回重办请填写理由" in page
    status, page = _post(agent, number, "review", decision="reject", note="未写明维修时间")
    assert status == 200 and "已退回承办单位重办" in page
    assert _ticket(db, number).status is TicketStatus.IN_PROGRESS

    _step(db, number, lambda s, t: dispatch.reply(s, t, housing, "已于周三修复"))
    colleague = login("lead")
    opened = _shown(colleague, number)
    status, page = _post(agent, number, "review", decision="approve")
    assert "审核通过" in page and _ticket(db, number).status is TicketStatus.REVIEWED
    with db() as session:
        assert session.scalars(select(RevisitTask)).one().ticket_id == _ticket(db, number).id
    # A colleague deciding on the page opened earlier is told, not applied twice.
    status, page = _post(colleague, number, "review", opened, decision="reject", note="x")
    assert status == 409 and "已被他人更新" in page


def test_a_return_is_reassigned_with_the_catalogs_suggestion_or_sent_back(
    db: sessionmaker[Session], login: Login, make_ticket: Callable[..., str], departments: dict[str, int]
) -> None:
    housing = departments["housing"]
    wrong = make_ticket("housing")  # 路灯 in the city centre: the catalog says 城市管理
    disputed = make_ticket("housing", caller_phone="13900000001", category_code="010102")
    for number in (wrong, disputed):
        _step(db, number, lambda s, t: dispatch.return_(s, t, housing, "不属于本单位职责"))
    agent = login("agent1")
    listing = agent.get("/centre/").get_data(as_text=True)
    assert wrong in listing and "不属于本单位职责" in listing

    page = agent.get(f"/centre/tickets/{wrong}").get_data(as_text=True)
    suggested = departments["urban-management"]
    assert re.search(rf'<option value="{suggested}" selected>', page)
    status, page = _post(agent, wrong, "return-review", decision="accept", department_id=str(suggested))
    assert "已改派" in page
    ticket = _ticket(db, wrong)
    assert ticket.status is TicketStatus.DISPATCHED and ticket.department_id == suggested
    with db() as session:
        shares = session.scalars(select(TicketAssignment).where(TicketAssignment.ticket_id == ticket.id))
        assert {(s.department_id, s.active) for s in shares} == {(housing, False), (suggested, True)}

    status, page = _post(agent, disputed, "return-review", decision="refuse")
    assert status == 409 and "请填写说明" in page
    _post(agent, disputed, "return-review", decision="refuse", note="道路井盖属住建局职责")
    ticket = _ticket(db, disputed)
    assert ticket.status is TicketStatus.DISPATCHED and ticket.department_id == housing
    with db() as session:
        note = session.scalars(
            select(TicketEvent.note).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id.desc())
        ).first()
    assert note is not None and "退单理由不成立" in note and "道路井盖属住建局职责" in note


def test_only_a_supervisor_decides_an_extension_and_the_citizen_is_told_the_new_date(
    db: sessionmaker[Session], login: Login, make_ticket: Callable[..., str], departments: dict[str, int]
) -> None:
    number = make_ticket("housing")
    housing = departments["housing"]
    before = _ticket(db, number).deadline_at
    assert before is not None
    proposed = (before + dt.timedelta(days=20)).date()
    _step(db, number, lambda s, t: dispatch.request_extension(s, t, housing, "需协调施工队", proposed))
    agent, lead = login("agent1"), login("lead")
    assert proposed.isoformat() in agent.get("/centre/").get_data(as_text=True)
    assert "延期申请由班长审批" in agent.get(f"/centre/tickets/{number}").get_data(as_text=True)
    assert _post(agent, number, "extension", decision="approve")[0] == 403

    status, page = _post(lead, number, "extension", decision="approve", note="情况属实")
    assert "已同意延期" in page
    assert _ticket(db, number).deadline_at != before
    with db() as session:
        told = session.scalars(
            select(Notification.body).where(Notification.kind == "ticket.extension_approved")
        )
        assert [proposed.isoformat() in body for body in told] == [True]
    assert _post(lead, number, "extension", decision="refuse")[0] == 409  # nothing pending any more


def test_duplicates_are_merged_behind_the_lead_the_user_picks(
    db: sessionmaker[Session], login: Login, make_ticket: Callable[..., str], departments: dict[str, int]
) -> None:
    first = make_ticket("housing", caller_phone="13700000007")
    second = make_ticket("housing", caller_phone="13700000007")
    third = make_ticket("housing", caller_phone="13700000007")
    agent = login("agent1")
    page = agent.get(f"/centre/tickets/{second}").get_data(as_text=True)
    assert first in page and third in page and "同一来电号码" in page

    status, page = _post(agent, second, "merge", lead=first, merge=third)
    assert f"已并单，主工单 {first}" in page
    for number in (second, third):
        merged = _ticket(db, number)
        assert merged.status is TicketStatus.MERGED and merged.merged_into_id == _ticket(db, first).id
    page = agent.get(f"/centre/tickets/{first}").get_data(as_text=True)
    assert second in page and third in page and "已并入本工单" in page
    # The department no longer works the merged ones.
    assert login("dept-housing").get(f"/dept/tickets/{second}").status_code == 404


def test_overdue_tickets_are_listed_urged_by_agents_and_supervised_by_the_supervisor(
    db: sessionmaker[Session], login: Login, make_ticket: Callable[..., str]
) -> None:
    late = make_ticket("housing", now=dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC))
    on_time = make_ticket("housing", caller_phone="13900000002")
    agent, lead = login("agent1"), login("lead")
    listing = agent.get("/centre/").get_data(as_text=True)
    section = listing[listing.index('id="late"') :]
    assert late in section and on_time not in section and "办结超期" in section

    assert "已催办" in _post(agent, late, "urge")[1]
    assert _post(agent, late, "supervise")[0] == 403
    assert "已督办" in _post(lead, late, "supervise", note="请今日内签收")[1]
    section = lead.get("/centre/").get_data(as_text=True).split('id="late"')[1]
    assert "督办中" in section
    with db() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_id == late).order_by(AuditEntry.id)
        ).all()
    assert "ticket.urge" in actions and "ticket.supervise" in actions and "ticket.view" in actions


def test_departments_and_strangers_cannot_open_the_centre(
    login: Login, make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("housing")
    department = login("dept-housing")
    assert department.get("/centre/").status_code == 403
    assert department.get(f"/centre/tickets/{number}").status_code == 403
    assert login("root").get("/centre/").status_code == 403
    stranger = login("agent1").application.test_client()
    assert stranger.get("/centre/").status_code in (302, 401)


def test_the_ticket_shows_the_callers_key_in_the_survey_after_the_call_it_was_written_from(
    login: Login, make_ticket: Callable[..., str], db: sessionmaker[Session]
) -> None:
    number = make_ticket("housing", call_id="call-with-survey")
    agent = login("agent1")
    assert "通话评价" not in agent.get(f"/centre/tickets/{number}").get_data(as_text=True)  # no CDR yet
    with transaction(db) as session:
        now = dt.datetime.now(dt.UTC)
        session.add(Call(call_id="call-with-survey", caller="13800001234", arrived_at=now, survey_score=3))
    page = agent.get(f"/centre/tickets/{number}").get_data(as_text=True)
    assert re.search(r'<dd id="call-survey">不满意</dd>', page), page
