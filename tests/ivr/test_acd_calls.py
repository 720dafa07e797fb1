"""Callers put through to agents over real SIP: seat phones register to Kamailio, callers press 0,
the ACD offers them to seats in longest-idle order, the worker bridges and records both sides."""

from __future__ import annotations

import datetime as dt
import secrets
import subprocess
import time
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd import callbacks
from acd.callbacks import CallbackReason, CallbackStatus, CallbackTask
from acd.models import Disposition, Seat
from acd.seat_states import SeatEvent, SeatState
from hotline import bus
from hotline.db import transaction, utcnow
from hotline.settings import Settings
from ivr import kamailio
from tests.ivr.centre import CALLER_HZ, SEAT_HZ
from tests.ivr.lab import Phone, cdr, closed, event, pitch, recordings, tone_share

if TYPE_CHECKING:
    from tests.ivr.centre import Centre  # the `centre` fixture is in tests/ivr/conftest.py

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(kamailio.find_binary(Settings()) is None, reason="kamailio is not installed"),
]


def kamailio_holds(extension: str, settings: Settings) -> str:
    """What Kamailio's seat password table holds for `extension` now (kamcmd htable.get)."""
    ctl = f"unix:{kamailio.runtime_dir(settings) / 'kamailio_ctl'}"
    argv = ["kamcmd", "-s", ctl, "htable.get", "seatpw", f"s:{extension}"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False).stdout


def callback_tasks(db: sessionmaker[Session], caller: str) -> list[CallbackTask]:
    with db() as session:
        return list(session.scalars(select(CallbackTask).where(CallbackTask.caller == caller)))


def talk(caller: Phone, seat: Phone, centre: Centre) -> None:
    """Each side says something (a tone of its own) once the call is bridged."""
    caller.send(f"play {centre.voices / 'caller.wav'}")
    seat.send(f"play {centre.voices / 'seat.wav'}")


def test_three_callers_two_seats_longest_idle_first_both_sides_heard_and_the_third_waits(
    centre: Centre, db: sessionmaker[Session]
) -> None:
    lab = centre.softswitch
    seat1 = centre.seat_phone("8001")
    seat2 = centre.seat_phone("8002")
    centre.ready("8002")  # ready longest: gets the first caller
    centre.ready("8001")
    with transaction(db) as session:  # the first caller hung up in the queue earlier today
        missed = callbacks.book(session, "13800000001", "earlier", CallbackReason.ABANDONED_QUEUE)
        assert missed is not None
        session.flush()
        missed_id = missed.id

    first, first_id = centre.caller("13800000001")
    assert event(lab, "call.answered", timeout=15, call_id=first_id)["seat"] == "8002"

    def task_state() -> tuple[CallbackStatus, str]:
        with db() as session:
            task = session.get_one(CallbackTask, missed_id)
            return task.status, task.outcome

    # Got through (the answer is written to SQL off the SIP thread): nobody is to ring back about it.
    assert lab.wait_for(lambda: task_state() == (CallbackStatus.DONE, "called_in"), timeout=5), task_state()
    second, second_id = centre.caller("13800000002")
    assert event(lab, "call.answered", timeout=15, call_id=second_id)["seat"] == "8001"
    assert seat2.expect("incoming").startswith("incoming") and seat1.expect("incoming")
    talk(first, seat2, centre)
    talk(second, seat1, centre)

    third, third_id = centre.caller("13800000003")
    queued = event(lab, "call.queued", timeout=15, call_id=third_id)
    assert queued["position"] == 1  # read back to the caller as "您前面还有 一 位"
    assert centre.acd.waiting("general") == [third_id]
    lab.wait_for(lambda: False, timeout=2.5)  # the voices play; the third keeps waiting
    assert [centre.acd.seat(ext).state for ext in ("8001", "8002")] == [SeatState.TALKING] * 2

    # The first caller hangs up: 8002 wraps up (1 s here), is ready by itself, and takes the third.
    first.send("hangup")
    first.heard()
    assert seat2.expect("disconnected")
    answered = event(lab, "call.answered", timeout=15, call_id=third_id)
    assert answered["seat"] == "8002"
    states = [
        (e.data["from"], e.data["state"]) for e in lab.events("seat.changed") if e.data["extension"] == "8002"
    ]
    assert ("talking", "wrap_up") in states and ("wrap_up", "ready") in states

    row = closed(db, lab, first_id)
    assert row.disposition is Disposition.ANSWERED and row.agent_answered_at is not None
    assert row.seat_id is not None and row.agent_answered_at >= row.queued_at
    legs = {r.leg: r for r in lab.wait_for(lambda: [r for r in recordings(db, first_id) if r.complete])}
    lab.wait_for(lambda: len([r for r in recordings(db, first_id) if r.complete]) == 2)
    legs = {r.leg: r for r in recordings(db, first_id)}
    assert set(legs) == {"caller", "agent"} and all(r.complete for r in legs.values())
    root = lab.settings.recordings_dir
    # One file per leg, each with its own speaker: the caller's voice, and the agent's.
    assert tone_share(root / legs["caller"].path, CALLER_HZ) > 0.5
    assert tone_share(root / legs["agent"].path, SEAT_HZ) > 0.5
    assert tone_share(root / legs["agent"].path, CALLER_HZ) < 0.2
    # And each phone heard the other side.
    assert tone_share(first.record, SEAT_HZ) > 0.5
    seat2_heard = seat2.heard()
    assert tone_share(seat2_heard, CALLER_HZ) > 0.5

    for phone in (second, third):
        phone.send("hangup")
        phone.heard()
    for call_id in (second_id, third_id):
        assert closed(db, lab, call_id).disposition is Disposition.ANSWERED
    assert lab.wait_for(lambda: not centre.stuck(), timeout=5), centre.stuck()
    assert cdr(db, third_id) is not None


def test_a_seat_that_does_not_answer_goes_not_ready_and_a_caller_or_seat_leaving_while_it_rings_frees_both(
    centre: Centre, db: sessionmaker[Session]
) -> None:
    lab, acd = centre.softswitch, centre.acd
    seat1 = centre.seat_phone("8001", answer=False)
    centre.ready("8001")

    # RONA: the phone rings 3 s unanswered; the seat is not ready and the caller back in the queue.
    caller, call_id = centre.caller("13800000011")
    assert seat1.expect("incoming", timeout=15)
    assert lab.wait_for(lambda: acd.seat("8001").state is SeatState.NOT_READY, timeout=10)
    assert acd.seat("8001").reason == "rona" and acd.waiting("general") == [call_id]
    assert seat1.expect("disconnected")  # the ringing stopped

    # Ready again, it rings again, and the caller gives up while it rings: the seat is free.
    centre.ready("8001")
    assert seat1.expect("incoming", timeout=15)
    caller.send("hangup")
    caller.heard()
    assert seat1.expect("disconnected")
    assert lab.wait_for(lambda: acd.seat("8001").state is SeatState.READY, timeout=5)
    row = closed(db, lab, call_id)
    assert row.disposition is Disposition.ABANDONED_QUEUE and row.agent_answered_at is None
    assert any(step.get("result") == "rona" and step.get("seat") == "8001" for step in row.ivr_path)
    # 漏接回拨: the missed caller is to be called back (in a couple of minutes, not at once).
    (task,) = callback_tasks(db, "13800000011")
    assert task.reason is CallbackReason.ABANDONED_QUEUE and task.status is CallbackStatus.OPEN
    assert task.due_at > row.ended_at

    # A seat logging out while its phone rings gives the call back; another seat takes it.
    caller2, call2 = centre.caller("13800000012")
    assert seat1.expect("incoming", timeout=15)
    acd.seat_event("8001", SeatEvent.LOGOUT)
    assert seat1.expect("disconnected")
    assert acd.waiting("general") == [call2]
    seat2 = centre.seat_phone("8002")
    centre.ready("8002")
    assert event(lab, "call.answered", timeout=15, call_id=call2)["seat"] == "8002"
    assert seat2.expect("incoming")
    caller2.send("hangup")
    caller2.heard()
    assert closed(db, lab, call2).disposition is Disposition.ANSWERED
    assert acd.seat("8001").state is SeatState.LOGGED_OUT
    assert lab.wait_for(lambda: not centre.stuck(), timeout=5), centre.stuck()


def test_the_agent_hanging_up_first_and_a_worker_killed_mid_call_leave_no_seat_stuck(
    centre: Centre, db: sessionmaker[Session]
) -> None:
    lab, acd = centre.softswitch, centre.acd
    seat = centre.seat_phone("8001")
    centre.ready("8001")

    # The agent hangs up first: the caller hears the goodbye and the hotline hangs up.
    caller, call_id = centre.caller("13800000021")
    event(lab, "call.answered", timeout=15, call_id=call_id)
    seat.expect("media")
    seat.send("hangup")
    assert caller.expect("disconnected", timeout=10)
    row = closed(db, lab, call_id)
    assert row.disposition is Disposition.ANSWERED and row.seat_id is not None
    assert {"node": "entry", "action": "goodbye"} in row.ivr_path
    assert lab.wait_for(lambda: acd.seat("8001").state is SeatState.READY, timeout=10)

    # The worker holding a bridged call is killed, then restarted: it closes the call as
    # answered (the agent did talk) and the seat goes through wrap-up to ready. Kamailio ends the
    # dead worker's calls: neither phone is left in a silent call.
    caller2, call2 = centre.caller("13800000022")
    answered = event(lab, "call.answered", timeout=15, call_id=call2)
    assert seat.expect("media")
    # A call in progress: its answer is in SQL (written off the SIP thread, just after the event).
    assert lab.wait_for(lambda: (row := cdr(db, call2)) is not None and row.agent_answered_at is not None)
    index = int(answered["worker"].rsplit("-", 1)[1])
    centre.workers[index].proc.kill()
    centre.workers[index].proc.wait()
    lab.worker(index)
    row = closed(db, lab, call2)
    assert row.disposition is Disposition.ANSWERED
    assert any(step.get("event") == "worker_lost" for step in row.ivr_path)
    assert lab.wait_for(lambda: acd.seat("8001").state is SeatState.READY, timeout=10)
    assert not centre.stuck() and acd.waiting("general") == []
    assert seat.expect("disconnected", timeout=15) and caller2.expect("disconnected", timeout=5)


def test_a_worker_restart_seen_in_its_heartbeat_makes_the_registrar_end_the_calls_its_previous_run_left(
    centre: Centre, db: sessionmaker[Session]
) -> None:
    lab = centre.softswitch
    seat = centre.seat_phone("8001")
    centre.ready("8001")
    caller, call_id = centre.caller("13800000023")
    answered = event(lab, "call.answered", timeout=15, call_id=call_id)
    assert seat.expect("media")
    # `hotline registrar` (running here as in production) follows the heartbeats. One that says
    # the worker holding the call started again (written under a name of its own, so that the live
    # worker's heartbeat does not overwrite it) makes it end the calls that worker's "previous run"
    # holds in Kamailio: a BYE to the seat phone and to the caller.
    address = lab.workers_alive()[answered["worker"]]["address"]
    beat = {"address": address, "started": time.time() - 60}
    bus.heartbeat(lab.redis, "sip", "sip-worker-9@elsewhere", beat, ttl_s=30)
    lab.wait_for(lambda: False, timeout=2.5)  # the registrar has seen that run: nothing to end
    assert centre.acd.seat("8001").state is SeatState.TALKING
    bus.heartbeat(lab.redis, "sip", "sip-worker-9@elsewhere", {**beat, "started": time.time() + 2}, ttl_s=30)
    assert seat.expect("disconnected", timeout=10) and caller.expect("disconnected", timeout=5)


def test_waiting_callers_hear_the_wait_may_leave_a_message_or_be_called_back_and_get_the_fallback(
    centre: Centre, db: sessionmaker[Session]
) -> None:
    lab, acd = centre.softswitch, centre.acd

    # Nobody logged in: the caller hears so, then the fallback (voicemail by default).
    caller, call_id = centre.caller("13800000031")
    event(lab, "voicemail.recording", timeout=15, call_id=call_id)
    lab.wait_for(lambda: False, timeout=1.5)  # a message of a second and a half
    caller.send("hangup")
    caller.heard()
    row = closed(db, lab, call_id)
    assert row.disposition is Disposition.VOICEMAIL
    assert {"node": "entry", "queue": "general", "result": "nobody_logged_in", "fallback": "voicemail"} in (
        row.ivr_path
    )
    assert tone_share(caller.record, pitch("queue_unavailable")) > 0.5

    # A seat is logged in but not ready: callers wait and hear their place, the expected wait and
    # the options; 2 keeps the place and books a callback, 1 leaves a message.
    centre.seat_phone("8001")
    acd.seat_event("8001", SeatEvent.LOGIN)
    second, second_id = centre.caller("13800000032")
    assert event(lab, "call.queued", timeout=15, call_id=second_id)["position"] == 1
    lab.wait_for(lambda: False, timeout=2.5)  # one round of the comfort loop
    second.send("dtmf 2")
    assert second.expect("disconnected", timeout=10)  # "已为您保留排队位置…", goodbye, hung up
    second.heard()
    assert closed(db, lab, second_id).disposition is Disposition.CALLBACK
    (task,) = callback_tasks(db, "13800000032")
    assert task.reason is CallbackReason.VIRTUAL_HOLD and task.status is CallbackStatus.OPEN
    assert task.queue == "general" and task.call_id == second_id
    for prompt_id in ("queue_position_before", "queue_wait_before", "queue_options", "callback_booked"):
        assert tone_share(second.record, pitch(prompt_id)) > 0.5, prompt_id

    third, third_id = centre.caller("13800000033")
    event(lab, "call.queued", timeout=15, call_id=third_id)
    third.send("dtmf 1")
    event(lab, "voicemail.recording", timeout=10, call_id=third_id)
    lab.wait_for(lambda: False, timeout=1.5)
    third.send("hangup")
    third.heard()
    assert closed(db, lab, third_id).disposition is Disposition.VOICEMAIL
    assert acd.waiting("general") == [] and callback_tasks(db, "13800000033") == []


def test_only_the_seats_password_registers_a_new_one_applies_at_once_and_an_unregistered_phone_gets_no_call(
    centre: Centre, db: sessionmaker[Session]
) -> None:
    lab, acd = centre.softswitch, centre.acd
    acd.upsert_seat("8001", {"general": 1})
    assert centre.phone("8001", "not-the-password").expect("unregistered", timeout=10) == "unregistered 401"
    # Another seat's valid credentials do not register this extension either.
    assert (
        centre.phone("8001", centre.passwords["8002"])
        .expect("unregistered", timeout=10)
        .startswith("unregistered 40")
    )
    assert not acd.seat("8001").registered

    # The administrator resets the password: Kamailio takes the new one within a second or so.
    with transaction(db) as session:
        seat = session.scalar(select(Seat).where(Seat.extension == "8001"))
        assert seat is not None
        seat.sip_password = centre.passwords["8001"] = secrets.token_urlsafe(12)
    assert lab.wait_for(lambda: centre.passwords["8001"] in kamailio_holds("8001", lab.settings), timeout=5)
    phone = centre.phone("8001", centre.passwords["8001"])
    assert phone.expect("registered", timeout=10) == "registered 200"
    assert lab.wait_for(lambda: acd.seat("8001").registered, timeout=10)

    # The phone goes away: the seat, though ready, is not offered the caller.
    centre.ready("8001")
    phone.send("unregister")
    assert phone.expect("unregistered", timeout=10)
    assert lab.wait_for(lambda: not acd.seat("8001").registered, timeout=10)
    caller, call_id = centre.caller("13800000041")
    event(lab, "call.queued", timeout=15, call_id=call_id)
    lab.wait_for(lambda: False, timeout=2)
    assert acd.waiting("general") == [call_id] and acd.seat("8001").state is SeatState.READY
    caller.send("hangup")
    closed(db, lab, call_id)


def test_a_missed_caller_is_called_back_when_a_seat_is_ready_and_put_through_to_it(
    centre: Centre, db: sessionmaker[Session]
) -> None:
    lab = centre.softswitch
    seat = centre.seat_phone("8001")
    port = lab.ports(1)
    citizen = Phone(port, lab.ports(10), "13800000051", lab.root / "citizen-heard.wav")
    lab.phones.append(citizen)
    number = f"sip:13800000051@127.0.0.1:{port}"  # where the test reaches the citizen (no trunk here)
    earlier = utcnow() - dt.timedelta(minutes=5)  # missed a while ago: due now
    with transaction(db) as session:
        callbacks.book(
            session, number, "missed", CallbackReason.ABANDONED_QUEUE, queue="general", now=earlier
        )

    centre.ready("8001")  # a seat that could take the call: the hotline dials the citizen
    assert citizen.expect("incoming", timeout=15)
    answered = event(lab, "call.answered", timeout=20, seat="8001")
    assert seat.expect("incoming") and answered["callback"]
    talk(citizen, seat, centre)
    lab.wait_for(lambda: False, timeout=2.5)
    citizen.send("hangup")
    citizen.heard()

    def task() -> CallbackTask:
        (found,) = callback_tasks(db, number)
        return found

    assert lab.wait_for(lambda: task().status is CallbackStatus.DONE, timeout=10), task().status
    assert task().attempts == 1 and task().outcome == "bridged"
    row = closed(db, lab, answered["call_id"])
    assert row.direction == "out" and row.seat_id is not None and row.agent_answered_at is not None
    legs = lab.wait_for(lambda: {r.leg: r for r in recordings(db, row.call_id) if r.complete} or None)
    assert legs and set(legs) == {"caller", "agent"}, legs
    root = lab.settings.recordings_dir
    assert tone_share(root / legs["caller"].path, CALLER_HZ) > 0.5
    assert tone_share(root / legs["agent"].path, SEAT_HZ) > 0.5
    assert lab.wait_for(lambda: not centre.stuck(), timeout=5), centre.stuck()
