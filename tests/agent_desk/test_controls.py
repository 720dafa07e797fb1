"""Call controls from the desk and the wallboard reach the softswitch worker holding the call.

A real Redis pub/sub subscriber on the worker's channel stands in for the softswitch worker
(`ivr.call_control`, outside the desk): what it receives is what the worker would carry out.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd import callbacks
from acd.controls import Action, Command, channel
from acd.models import Seat
from acd.seat_states import SeatEvent, SeatState
from acd.store import AcdStore
from hotline.accounts import AuditEntry, Role
from hotline.db import transaction
from tests.agent_desk.conftest import LogIn, People, staff

NextCommand = Callable[[], Command | None]
WORKER = "sip-worker-1@desk-test"


@pytest.fixture
def worker(redis_client: redis.Redis) -> Iterator[Callable[[], Command | None]]:
    """The softswitch worker's channel: `worker()` is the next command it got (None after 2 s)."""
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel(WORKER))

    def next_command(timeout: float = 2.0) -> Command | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                return Command.decode(message["data"])
        return None

    yield next_command
    pubsub.close()


@pytest.fixture
def colleagues(db: sessionmaker[Session], people: People) -> dict[str, int]:
    """A second agent at seat 8002 and a department user; the supervisor `lead` has no seat yet."""
    with transaction(db) as session:
        agent2 = staff("agent2", "话务员02", Role.AGENT)
        department = staff("dept1", "住建局", Role.DEPARTMENT, department_id=people.department_id)
        session.add_all([agent2, department])
        session.flush()
        session.add(
            Seat(
                extension="8002", name="8002座席", sip_password="x", skills={"general": 1}, agent_id=agent2.id
            )
        )
        return {"agent2": agent2.id}


def _ready(acd: AcdStore, extension: str, agent_id: int) -> None:
    """The seat signed in and ready, its phone registered."""
    acd.upsert_seat(extension, {"general": 1}, agent_id=agent_id)
    acd.seat_event(extension, SeatEvent.LOGIN)
    acd.seat_event(extension, SeatEvent.READY)
    acd.set_registered(extension, True)


def _talking(acd: AcdStore, extension: str, agent_id: int, call_id: str, worker: str = WORKER) -> None:
    """A caller put through to the seat by the ACD, as a SIP worker's round does (no SIP here)."""
    _ready(acd, extension, agent_id)
    acd.enqueue(call_id, "general", caller="13900000000", worker=worker)
    assert [offer.extension for offer in acd.dispatch(worker=worker)] == [extension]
    acd.seat_event(extension, SeatEvent.ANSWER, call_id=call_id)


@pytest.fixture
def agent_talking(acd: AcdStore, people: People) -> None:
    """agent1's seat 8001 talking to caller c-1, put through by WORKER."""
    _talking(acd, "8001", people.agent_id, "c-1")


def _post(client: FlaskClient, url: str, token: str | None, body: dict[str, Any]) -> Any:
    headers = {"X-CSRFToken": token} if token else {}
    return client.post(url, json=body, headers=headers)


@pytest.mark.usefixtures("agent_talking")
def test_the_agents_controls_reach_the_worker_holding_its_call(
    log_in: LogIn, people: People, worker: NextCommand, db: sessionmaker[Session]
) -> None:
    client, token = log_in("agent1")

    held = _post(client, "/desk/api/call/hold", token, {"call_id": "c-1"})
    assert held.status_code == 202 and held.get_json()["label"] == "保持"
    command = worker()
    assert command is not None
    assert (command.call_id, command.action, command.seat, command.by_user) == (
        "c-1",
        Action.HOLD,
        "8001",
        people.agent_id,
    )
    assert command.id == held.get_json()["id"]

    # Targets: a configured queue, a typed department number, an emergency line.
    _post(client, "/desk/api/call/transfer_queue", token, {"call_id": "c-1", "target": "enterprise"})
    _post(client, "/desk/api/call/transfer_number", token, {"call_id": "c-1", "target": "0858-8221234"})
    _post(client, "/desk/api/call/emergency", token, {"call_id": "c-1", "target": "119"})
    sent = [worker(), worker(), worker()]
    assert [(c.action, c.target) for c in sent if c] == [
        (Action.TRANSFER_QUEUE, "enterprise"),
        (Action.TRANSFER_NUMBER, "08588221234"),
        (Action.EMERGENCY, "119"),
    ]
    refused = {
        "transfer_queue": ("nowhere", "请选择要转入的队列"),
        "transfer_number": ("abc", "请输入正确的转接号码（3到20位数字）"),
        "emergency": ("12345", "紧急转接只能转 110、119、120、122"),
    }
    for action, (target, message) in refused.items():
        answer = _post(client, f"/desk/api/call/{action}", token, {"call_id": "c-1", "target": target})
        assert (answer.status_code, answer.get_json()["error"]) == (400, message)
    unknown = _post(client, "/desk/api/call/listen", token, {"call_id": "c-1", "target": "8001"})
    assert (unknown.status_code, unknown.get_json()["error"]) == (400, "未知的通话操作")
    assert worker() is None  # nothing refused reached the softswitch

    with db() as session:
        audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "call.control")).all()
    assert [(a.actor_id, a.target_id, a.detail["action"], a.detail["result"]) for a in audited] == [
        (people.agent_id, "c-1", action, "sent")
        for action in ("hold", "transfer_queue", "transfer_number", "emergency")
    ]


@pytest.mark.usefixtures("agent_talking")
def test_a_call_goes_to_a_colleagues_seat_picked_from_the_others(
    log_in: LogIn,
    people: People,
    colleagues: dict[str, int],
    worker: NextCommand,
    db: sessionmaker[Session],
) -> None:
    with transaction(db) as session:  # a seat taken out of service is not offered
        session.add(Seat(extension="8003", name="8003座席", sip_password="x", skills={}, active=False))
        session.add(Seat(extension="8004", name="专家席", sip_password="x", skills={}))
    client, token = log_in("agent1")

    # The pick lists the other active seats, each with who sits there (or the seat's name).
    page = client.get("/desk/").get_data(as_text=True)
    pick = page[page.index('id="transfer-seat"') : page.index("</select>", page.index('id="transfer-seat"'))]
    assert '<option value="8002">8002 话务员02</option>' in pick
    assert '<option value="8004">8004 专家席</option>' in pick
    assert 'value="8001"' not in pick and 'value="8003"' not in pick

    sent = _post(client, "/desk/api/call/transfer_seat", token, {"call_id": "c-1", "target": "8002"})
    assert sent.status_code == 202 and sent.get_json()["label"] == "转座席"
    command = worker()
    assert command is not None
    assert (command.call_id, command.action, command.target, command.seat, command.by_user) == (
        "c-1",
        Action.TRANSFER_SEAT,
        "8002",
        "8001",
        people.agent_id,
    )
    # Not to itself, to a seat out of service, to no seat at all, or to a made-up one.
    for target in ("8001", "8003", "", "9999"):
        answer = _post(client, "/desk/api/call/transfer_seat", token, {"call_id": "c-1", "target": target})
        assert (answer.status_code, answer.get_json()["error"]) == (400, "请选择要转接的座席")
    assert worker() is None

    with db() as session:
        audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "call.control")).all()
    assert [
        (a.actor_id, a.target_id, a.detail["action"], a.detail["target"], a.detail["result"]) for a in audited
    ] == [(people.agent_id, "c-1", "transfer_seat", "8002", "sent")]


def test_an_agent_cannot_act_on_another_seats_call(
    acd: AcdStore, log_in: LogIn, people: People, colleagues: dict[str, int], worker: NextCommand
) -> None:
    _talking(acd, "8002", colleagues["agent2"], "c-2")
    client, token = log_in("agent1")
    idle = _post(client, "/desk/api/call/hang_up", token, {"call_id": "c-2"})
    assert (idle.status_code, idle.get_json()["error"]) == (409, "您的座席当前没有通话")
    _talking(acd, "8001", people.agent_id, "c-1")
    other = _post(client, "/desk/api/call/hang_up", token, {"call_id": "c-2"})
    assert (
        other.status_code == 409 and other.get_json()["error"] == "该通话已不是当前通话，请以页面最新状态为准"
    )
    assert worker() is None
    assert acd.seat("8002").call_id == "c-2"  # the colleague's call goes on


def test_without_the_worker_or_the_call_the_desk_says_so(
    acd: AcdStore, log_in: LogIn, people: People, redis_client: redis.Redis
) -> None:
    _talking(acd, "8001", people.agent_id, "c-1", worker="sip-worker-9@gone")  # nobody listens there
    client, token = log_in("agent1")
    gone = _post(client, "/desk/api/call/hold", token, {"call_id": "c-1"})
    assert (gone.status_code, gone.get_json()["error"]) == (503, "软交换暂时不可用，请稍后再试")
    # The caller hangs up: the seat is in wrap-up and has nothing left to hold.
    acd.leave("c-1", wrap_up_s=30)
    over = _post(client, "/desk/api/call/hold", token, {"call_id": "c-1"})
    assert (over.status_code, over.get_json()["error"]) == (409, "您的座席当前没有通话")


@pytest.mark.usefixtures("agent_talking", "colleagues")
def test_call_controls_need_an_agent_a_login_and_the_csrf_token(log_in: LogIn, worker: NextCommand) -> None:
    # The agent logged out (another tab, say) and the page still holds the session's token.
    gone, gone_token = log_in("agent1")
    gone.post("/logout", data={"csrf_token": gone_token})
    logged_out = _post(gone, "/desk/api/call/hang_up", gone_token, {"call_id": "c-1"})
    assert logged_out.status_code == 302 and "/login" in logged_out.headers["Location"]
    department, token = log_in("dept1")
    assert _post(department, "/desk/api/call/hang_up", token, {"call_id": "c-1"}).status_code == 403
    assert (
        _post(department, "/wallboard/api/supervise/listen", token, {"extension": "8001"}).status_code == 403
    )
    agent, _ = log_in("agent1")
    no_token = _post(agent, "/desk/api/call/hang_up", None, {"call_id": "c-1"})
    assert no_token.status_code == 400 and "表单已过期" in no_token.get_json()["error"]
    assert worker() is None


def test_a_stuck_page_is_slowed_down(log_in: LogIn) -> None:
    client, token = log_in("agent1")
    codes = [_post(client, "/desk/api/call/hold", token, {"call_id": "x"}).status_code for _ in range(31)]
    assert codes[:30] == [409] * 30
    last = _post(client, "/desk/api/call/hold", token, {"call_id": "x"})
    assert (last.status_code, last.get_json()["error"]) == (429, "操作过于频繁，请稍后再试")


@pytest.mark.usefixtures("agent_talking")
def test_a_supervisor_listens_whispers_and_barges_from_its_own_seat(
    log_in: LogIn, people: People, db: sessionmaker[Session], worker: NextCommand
) -> None:
    lead, token = log_in("lead")

    # No seat of its own yet: the softswitch would have no phone to ring.
    state = lead.get("/wallboard/api/state").get_json()
    assert state["own_extension"] is None
    assert [s["call_id"] for s in state["seats"]] == ["c-1"]
    seatless = _post(lead, "/wallboard/api/supervise/listen", token, {"extension": "8001", "call_id": "c-1"})
    assert (seatless.status_code, seatless.get_json()["error"]) == (409, "请先为班长分配座席分机")
    assert worker() is None

    with transaction(db) as session:
        session.add(
            Seat(extension="8009", name="班长席", sip_password="x", skills={}, agent_id=people.lead_id)
        )
    assert lead.get("/wallboard/api/state").get_json()["own_extension"] == "8009"
    for action in ("listen", "whisper", "barge", "stop_listening"):
        answer = _post(
            lead, f"/wallboard/api/supervise/{action}", token, {"extension": "8001", "call_id": "c-1"}
        )
        assert answer.status_code == 202
        command = worker()
        assert command is not None
        assert (command.call_id, command.action.value, command.target, command.by_user) == (
            "c-1",
            action,
            "8009",
            people.lead_id,
        )
    own = _post(lead, "/wallboard/api/supervise/listen", token, {"extension": "8009", "call_id": "c-1"})
    assert (own.status_code, own.get_json()["error"]) == (409, "不能监听自己座席的通话")
    with db() as session:
        audited = session.scalars(select(AuditEntry).where(AuditEntry.actor_id == people.lead_id)).all()
    assert [a.detail["action"] for a in audited if a.action == "call.control"] == [
        "listen",
        "whisper",
        "barge",
        "stop_listening",
    ]

    agent, agent_token = log_in("agent1")
    body = {"extension": "8001", "call_id": "c-1"}
    assert _post(agent, "/wallboard/api/supervise/listen", agent_token, body).status_code == 403


def test_the_desk_lists_pending_callbacks_with_masked_numbers(
    log_in: LogIn, db: sessionmaker[Session]
) -> None:
    now = dt.datetime.now(dt.UTC)
    with transaction(db) as session:
        missed = callbacks.book(
            session, "13912345678", "m-1", callbacks.CallbackReason.ABANDONED_QUEUE, now=now
        )
        asked = callbacks.book(session, "13687654321", "m-2", callbacks.CallbackReason.VIRTUAL_HOLD, now=now)
        done = callbacks.book(session, "13500000000", "m-3", callbacks.CallbackReason.ABANDONED_IVR, now=now)
        assert missed and asked and done
        session.flush()
        callbacks.move(asked, callbacks.CallbackStatus.DIALLING, now=now)
        callbacks.move(done, callbacks.CallbackStatus.CANCELLED, now=now)
    client, _ = log_in("agent1")
    tasks = client.get("/desk/api/callbacks").get_json()["tasks"]
    assert [(t["caller"], t["status"], t["reason"], t["attempts"]) for t in tasks] == [
        ("136****4321", "回拨中", "市民预约回拨", 1),  # asked: due at once
        ("139****5678", "待回拨", "排队时挂机", 0),  # missed: due two minutes later
    ]
    local = (now + callbacks.FIRST_TRY_AFTER).astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert tasks[1]["due"] == local.strftime("%m-%d %H:%M")
    assert "13912345678" not in client.get("/desk/api/callbacks").get_data(as_text=True)


def test_a_supervisor_cancels_an_open_callback_with_a_reason_and_nobody_else_can(
    log_in: LogIn, db: sessionmaker[Session]
) -> None:
    now = dt.datetime.now(dt.UTC)
    with transaction(db) as session:
        nuisance = callbacks.book(
            session, "13912345678", "m-1", callbacks.CallbackReason.ABANDONED_IVR, now=now
        )
        ringing = callbacks.book(
            session, "13687654321", "m-2", callbacks.CallbackReason.VIRTUAL_HOLD, now=now
        )
        assert nuisance and ringing
        session.flush()
        callbacks.move(ringing, callbacks.CallbackStatus.DIALLING, now=now)
        ids = nuisance.id, ringing.id
    agent, agent_token = log_in("agent1")
    listed = agent.get("/desk/api/callbacks").get_json()
    assert listed["can_cancel"] is False
    assert (
        _post(agent, f"/desk/api/callbacks/{ids[0]}/cancel", agent_token, {"reason": "骚扰"}).status_code
        == 403
    )

    lead, lead_token = log_in("lead")
    listed = lead.get("/desk/api/callbacks").get_json()
    assert listed["can_cancel"] is True
    assert {t["id"]: t["cancellable"] for t in listed["tasks"]} == {ids[0]: True, ids[1]: False}
    no_reason = _post(lead, f"/desk/api/callbacks/{ids[0]}/cancel", lead_token, {"reason": " "})
    assert no_reason.status_code == 400 and no_reason.get_json()["error"] == "请填写取消回拨的原因"
    busy = _post(lead, f"/desk/api/callbacks/{ids[1]}/cancel", lead_token, {"reason": "重复"})
    assert busy.status_code == 409  # being dialled: its call goes on
    assert _post(lead, "/desk/api/callbacks/999999/cancel", lead_token, {"reason": "x"}).status_code == 404
    assert (
        _post(lead, f"/desk/api/callbacks/{ids[0]}/cancel", None, {"reason": "骚扰"}).status_code == 400
    )  # CSRF
    done = _post(lead, f"/desk/api/callbacks/{ids[0]}/cancel", lead_token, {"reason": "骚扰电话"})
    assert done.status_code == 200
    assert [t["id"] for t in lead.get("/desk/api/callbacks").get_json()["tasks"]] == [ids[1]]
    with db() as session:
        task = session.get_one(callbacks.CallbackTask, ids[0])
        assert task.status is callbacks.CallbackStatus.CANCELLED and task.done_at is not None
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "callback.cancel")).one()
        assert entry.target_id == str(ids[0]) and entry.detail == {"reason": "骚扰电话"}


def _consulting(acd: AcdStore, call_id: str, agent: str, colleague: str) -> None:
    """What the worker does on `consult`: the colleague's seat reserved, the agent's held."""
    acd.reserve(call_id, colleague)
    acd.seat_event(agent, SeatEvent.HOLD, call_id=call_id)


@pytest.mark.usefixtures("agent_talking")
def test_an_attended_transfer_consults_a_colleague_then_hands_the_call_over(
    acd: AcdStore,
    log_in: LogIn,
    people: People,
    colleagues: dict[str, int],
    worker: NextCommand,
    db: sessionmaker[Session],
) -> None:
    _ready(acd, "8002", colleagues["agent2"])
    (agent, token), (colleague, colleague_token) = log_in("agent1"), log_in("agent2")
    assert agent.get("/desk/api/state").get_json()["consult"] is None

    # Nothing to complete or cancel yet; a consultation goes to a colleague's seat, not to itself.
    for action in ("complete_transfer", "cancel_consult"):
        answer = _post(agent, f"/desk/api/call/{action}", token, {"call_id": "c-1"})
        assert (answer.status_code, answer.get_json()["error"]) == (409, "当前没有进行中的咨询转接")
    for target in ("8001", "", "9999"):
        answer = _post(agent, "/desk/api/call/consult", token, {"call_id": "c-1", "target": target})
        assert (answer.status_code, answer.get_json()["error"]) == (400, "请选择要咨询的座席")
    assert worker() is None

    sent = _post(agent, "/desk/api/call/consult", token, {"call_id": "c-1", "target": "8002"})
    assert sent.status_code == 202 and sent.get_json()["label"] == "咨询转接"
    command = worker()
    assert command is not None
    assert (command.call_id, command.action, command.target, command.seat) == (
        "c-1",
        Action.CONSULT,
        "8002",
        "8001",
    )

    # The worker reserves 8002 and holds the caller: the desk shows the colleague ringing, a
    # reloaded desk too (the state comes from the seats, not from the page).
    _consulting(acd, "c-1", "8001", "8002")
    state = agent.get("/desk/api/state").get_json()
    assert state["state"] == "held"
    assert state["consult"] == {
        "role": "consulting",
        "extension": "8002",
        "name": "话务员02",
        "answered": False,
    }
    early = _post(agent, "/desk/api/call/complete_transfer", token, {"call_id": "c-1"})
    assert (early.status_code, early.get_json()["error"]) == (409, "同事尚未接听，暂不能完成转接")
    for action, target in (("resume", ""), ("transfer_seat", "8002"), ("consult", "8002"), ("survey", "")):
        answer = _post(agent, f"/desk/api/call/{action}", token, {"call_id": "c-1", "target": target})
        assert (answer.status_code, answer.get_json()["error"]) == (
            409,
            "正在咨询同事，请先完成转接或取消咨询",
        )
    assert worker() is None

    # 8002 answers: agent and colleague talk. The colleague's desk pops the call but it is not its
    # own yet: no control of it from there.
    acd.seat_event("8002", SeatEvent.ANSWER, call_id="c-1")
    assert agent.get("/desk/api/state").get_json()["consult"]["answered"] is True
    consulted = colleague.get("/desk/api/state").get_json()
    assert (consulted["state"], consulted["call"]["call_id"]) == ("talking", "c-1")
    assert consulted["consult"] == {
        "role": "consulted",
        "extension": "8001",
        "name": "话务员01",
        "answered": True,
    }
    mine_not_yet = _post(colleague, "/desk/api/call/hold", colleague_token, {"call_id": "c-1"})
    assert (mine_not_yet.status_code, mine_not_yet.get_json()["error"]) == (
        409,
        "同事正在向您咨询，转接完成后才能操作该通话",
    )

    done = _post(agent, "/desk/api/call/complete_transfer", token, {"call_id": "c-1"})
    assert done.status_code == 202 and done.get_json()["label"] == "完成转接"
    command = worker()
    assert command is not None
    assert (command.action, command.target, command.seat) == (Action.COMPLETE_TRANSFER, "", "8001")

    # The worker hands the call over: the agent wraps up, the call is the colleague's now.
    acd.seat_event("8001", SeatEvent.HANGUP, call_id="c-1", wrap_up_s=30)
    acd.hand_over("c-1", "8002")
    assert agent.get("/desk/api/state").get_json()["state"] == "wrap_up"
    again = _post(agent, "/desk/api/call/complete_transfer", token, {"call_id": "c-1"})
    assert (again.status_code, again.get_json()["error"]) == (409, "您的座席当前没有通话")
    theirs = colleague.get("/desk/api/state").get_json()
    assert (theirs["state"], theirs["call"]["call_id"], theirs["consult"]) == ("talking", "c-1", None)
    held = _post(colleague, "/desk/api/call/hold", colleague_token, {"call_id": "c-1"})
    assert held.status_code == 202
    command = worker()
    assert command is not None and (command.action, command.seat) == (Action.HOLD, "8002")

    with db() as session:
        audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "call.control")).all()
    assert [(a.actor_id, a.detail["action"], a.detail["target"], a.detail["result"]) for a in audited] == [
        (people.agent_id, "consult", "8002", "sent"),
        (people.agent_id, "complete_transfer", "", "sent"),
        (colleagues["agent2"], "hold", "", "sent"),
    ]


@pytest.mark.usefixtures("agent_talking")
def test_a_cancelled_consultation_leaves_the_caller_with_the_agent(
    acd: AcdStore, log_in: LogIn, colleagues: dict[str, int], worker: NextCommand
) -> None:
    _ready(acd, "8002", colleagues["agent2"])
    client, token = log_in("agent1")
    _post(client, "/desk/api/call/consult", token, {"call_id": "c-1", "target": "8002"})
    assert worker() is not None
    _consulting(acd, "c-1", "8001", "8002")

    # Cancelling while the colleague's phone still rings; hanging up is the agent's to do too.
    cancel = _post(client, "/desk/api/call/cancel_consult", token, {"call_id": "c-1"})
    assert cancel.status_code == 202 and cancel.get_json()["label"] == "取消咨询"
    command = worker()
    assert command is not None
    assert (command.call_id, command.action, command.target, command.seat) == (
        "c-1",
        Action.CANCEL_CONSULT,
        "",
        "8001",
    )
    assert _post(client, "/desk/api/call/hang_up", token, {"call_id": "c-1"}).status_code == 202
    assert worker() is not None

    # The worker withdraws the colleague's call and brings the caller back: no consultation left.
    acd.seat_event("8002", SeatEvent.CANCEL, call_id="c-1")
    acd.seat_event("8001", SeatEvent.UNHOLD, call_id="c-1")
    state = client.get("/desk/api/state").get_json()
    assert (state["state"], state["consult"]) == ("talking", None)
    assert acd.seat("8002").state is SeatState.READY
    over = _post(client, "/desk/api/call/cancel_consult", token, {"call_id": "c-1"})
    assert (over.status_code, over.get_json()["error"]) == (409, "当前没有进行中的咨询转接")
    assert _post(client, "/desk/api/call/hold", token, {"call_id": "c-1"}).status_code == 202
