"""The agent's call controls and the supervisor's listen/whisper over real SIP (acd.controls →
ivr.call_control): hold with music, the after-call survey, 三方通话 with a department, a transfer to
another queue, and the errors a desk is told about."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from acd import controls
from acd.controls import Action, Command, ControlUnavailable
from acd.models import Disposition, Seat
from acd.seat_states import SeatEvent, SeatState
from hotline.db import transaction
from hotline.settings import Settings
from ivr import kamailio
from tests.ivr.centre import CALLER_HZ, SEAT_HZ
from tests.ivr.lab import Phone, closed, event, pitch, recordings, tone, tone_share, write_wav

if TYPE_CHECKING:
    from tests.ivr.centre import Centre

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(kamailio.find_binary(Settings()) is None, reason="kamailio is not installed"),
]

HOLD_HZ = 392.0  # the first note of the hold music (ivr.tones.HOLD_NOTES_HZ)
SUPERVISOR_HZ = 3700.0  # what the supervisor says: above every tone prompt and both voices
AGENT_USER = 7  # the desk user who sends the agent's commands (the result goes to their room)


def control(centre: Centre, call_id: str, action: Action, target: str = "", seat: str = "") -> dict[str, Any]:
    """Send a command as the desk does and wait for the worker's `call.control` answer."""
    command = Command(call_id, action, target, by_user=AGENT_USER, seat=seat)
    controls.send(centre.softswitch.redis, command)
    return event(centre.softswitch, controls.RESULT_EVENT, timeout=20, id=command.id)


def bridged(centre: Centre, number: str, extension: str) -> tuple[Phone, str, Phone]:
    """A caller put through to `extension`: (the caller's phone, the call id, the seat's phone)."""
    caller, call_id = centre.caller(number)
    assert event(centre.softswitch, "call.answered", timeout=15, call_id=call_id)["seat"] == extension
    seat = centre.seat_phones[extension]
    assert seat.expect("incoming")
    return caller, call_id, seat


def pause(centre: Centre, seconds: float) -> None:
    centre.softswitch.wait_for(lambda: False, timeout=seconds)


def test_hold_plays_music_and_keeps_the_agent_unheard_and_the_survey_stores_the_callers_key(
    centre: Centre, db: sessionmaker[Session]
) -> None:
    lab, acd = centre.softswitch, centre.acd
    centre.seat_phone("8001")
    centre.ready("8001")
    caller, call_id, seat = bridged(centre, "13800000061", "8001")

    # Nothing to act on: a call that is not up, another agent's seat, a number not on the list.
    with pytest.raises(ControlUnavailable) as gone:
        controls.send(lab.redis, Command("no-such-call", Action.HOLD, seat="8001"))
    assert gone.value.reason == "no_call"
    assert control(centre, call_id, Action.HOLD, seat="8002")["error"] == "not_your_call"
    assert control(centre, call_id, Action.EMERGENCY, "12306", seat="8001")["error"] == "bad_target"
    assert control(centre, call_id, Action.RESUME, seat="8001")["error"] == "not_allowed"  # not held

    assert control(centre, call_id, Action.HOLD, seat="8001")["ok"] is True
    assert acd.seat("8001").state is SeatState.HELD
    seat.send(f"play {centre.voices / 'seat.wav'}")  # said while the caller is on hold
    pause(centre, 3.0)
    assert control(centre, call_id, Action.RESUME, seat="8001")["ok"] is True
    assert acd.seat("8001").state is SeatState.TALKING

    # The survey: the agent's leg ends (wrap-up), the caller is asked and presses 2 (基本满意).
    assert control(centre, call_id, Action.SURVEY, seat="8001")["ok"] is True
    assert seat.expect("disconnected")
    assert lab.wait_for(lambda: acd.seat("8001").state in (SeatState.WRAP_UP, SeatState.READY), timeout=5)
    pause(centre, 1.0)  # "请您对本次服务进行评价…"
    caller.send("dtmf 2")
    assert caller.expect("disconnected", timeout=15) == "disconnected 200"  # thanked, then goodbye
    heard = caller.heard()

    row = closed(db, lab, call_id)
    assert row.disposition is Disposition.ANSWERED and row.survey_score == 2
    assert {"node": "entry", "survey": "rated", "score": 2} in row.ivr_path
    assert tone_share(heard, HOLD_HZ) > 0.5  # the music on hold
    assert tone_share(heard, SEAT_HZ) < 0.2  # the agent was not heard while the caller was held
    assert tone_share(heard, pitch("survey_ask")) > 0.5
    assert lab.wait_for(lambda: not centre.stuck(), timeout=5), centre.stuck()


def _supervisor_phone(centre: Centre, db: sessionmaker[Session], extension: str) -> Phone:
    """A supervisor's seat phone, registered (its seat is logged out: it is never offered calls)."""
    centre.passwords[extension] = secrets.token_urlsafe(12)
    with transaction(db) as session:
        session.add(
            Seat(extension=extension, name="班长席", sip_password=centre.passwords[extension], skills={})
        )
    lab = centre.softswitch
    assert lab.wait_for(lambda: kamailio.seat_credentials_path(lab.settings).exists(), timeout=5)
    pause(centre, 2.0)  # the registrar pushes the new password to Kamailio within a round
    return centre.seat_phone(extension)


def test_a_supervisor_listens_then_whispers_to_the_agent_alone(
    centre: Centre, db: sessionmaker[Session]
) -> None:
    lab = centre.softswitch
    supervisor = _supervisor_phone(centre, db, "8009")
    centre.seat_phone("8001")
    centre.ready("8001")
    caller, call_id, seat = bridged(centre, "13800000062", "8001")

    listening = control(centre, call_id, Action.LISTEN, "8009")
    assert listening["ok"] is True and listening["mode"] == "listen"
    assert supervisor.expect("incoming")
    caller.send(f"play {centre.voices / 'caller.wav'}")  # one after the other: each clear
    pause(centre, 2.3)
    seat.send(f"play {centre.voices / 'seat.wav'}")
    pause(centre, 2.3)

    assert control(centre, call_id, Action.WHISPER, "8009")["mode"] == "whisper"
    whisper = write_wav(centre.voices / "supervisor.wav", tone(2.0, SUPERVISOR_HZ))
    supervisor.send(f"play {whisper}")
    pause(centre, 2.5)
    assert control(centre, call_id, Action.STOP_LISTENING)["ok"] is True
    assert supervisor.expect("disconnected")
    supervisor_heard = supervisor.heard()

    caller.send("hangup")
    caller_heard = caller.heard()
    seat.expect("disconnected")
    seat_heard = seat.heard()
    # The supervisor heard both sides; only the agent heard the supervisor.
    assert tone_share(supervisor_heard, CALLER_HZ) > 0.5 and tone_share(supervisor_heard, SEAT_HZ) > 0.5
    assert tone_share(seat_heard, SUPERVISOR_HZ) > 0.5
    assert tone_share(caller_heard, SUPERVISOR_HZ) < 0.2
    assert closed(db, lab, call_id).disposition is Disposition.ANSWERED
    assert lab.wait_for(lambda: not centre.stuck(), timeout=5), centre.stuck()


def test_a_department_joins_the_call_the_agent_leaves_it_and_transfers_go_to_a_queue_and_a_colleague(
    centre: Centre, db: sessionmaker[Session]
) -> None:
    lab, acd = centre.softswitch, centre.acd
    centre.seat_phone("8001")
    centre.ready("8001")
    caller, call_id, seat = bridged(centre, "13800000063", "8001")

    # 三方通话: the department's hotline (a phone here, reached by URI: there is no trunk) joins.
    port = lab.ports(1)
    department = Phone(port, lab.ports(10), "12319", lab.root / "department-heard.wav")
    lab.phones.append(department)
    joined = control(centre, call_id, Action.TRANSFER_NUMBER, f"sip:12319@127.0.0.1:{port}", seat="8001")
    assert joined["ok"] is True
    assert department.expect("incoming")
    assert control(centre, call_id, Action.DROP_AGENT, seat="8001")["ok"] is True
    assert seat.expect("disconnected")  # the agent is free; caller and department go on
    caller.send(f"play {centre.voices / 'caller.wav'}")
    pause(centre, 2.5)
    department.send("hangup")
    assert caller.expect("disconnected", timeout=15) == "disconnected 200"  # goodbye, then hung up
    department_heard = department.heard()
    assert tone_share(department_heard, CALLER_HZ) > 0.5
    row = closed(db, lab, call_id)
    assert any(step.get("party", "").startswith("sip:12319@") for step in row.ivr_path)
    legs = lab.wait_for(lambda: {r.leg for r in recordings(db, call_id) if r.complete} or None)
    assert legs is not None and "party" in legs

    # A transfer to a queue: agent 8001 leaves, the caller waits and 8002 takes it.
    assert lab.wait_for(lambda: acd.seat("8001").state is SeatState.READY, timeout=10)
    caller2, call2, seat1 = bridged(centre, "13800000064", "8001")
    centre.seat_phone("8002")
    centre.ready("8002")
    assert control(centre, call2, Action.TRANSFER_QUEUE, "general", seat="8001")["ok"] is True
    assert seat1.expect("disconnected")
    event(lab, "call.transferred", timeout=10, call_id=call2)
    answered = [e.data["seat"] for e in lab.events("call.answered") if e.data["call_id"] == call2]
    assert lab.wait_for(
        lambda: (
            [e.data["seat"] for e in lab.events("call.answered") if e.data["call_id"] == call2]
            == ["8001", "8002"]
        ),
        timeout=15,
    ), answered
    seat2 = centre.seat_phones["8002"]
    assert seat2.expect("incoming")

    # To a named colleague: refused while that seat is not ready, then offered to it directly.
    assert lab.wait_for(lambda: acd.seat("8001").state is SeatState.READY, timeout=10)
    acd.seat_event("8001", SeatEvent.NOT_READY, reason="break")
    assert control(centre, call2, Action.TRANSFER_SEAT, "8001", seat="8002")["error"] == "seat_busy"
    acd.seat_event("8001", SeatEvent.READY)
    assert control(centre, call2, Action.TRANSFER_SEAT, "8001", seat="8002")["ok"] is True
    assert seat2.expect("disconnected") and seat1.expect("incoming")
    assert lab.wait_for(
        lambda: (
            [e.data["seat"] for e in lab.events("call.answered") if e.data["call_id"] == call2]
            == ["8001", "8002", "8001"]
        ),
        timeout=15,
    )
    caller2.send("hangup")
    caller2.heard()
    row2 = closed(db, lab, call2)
    assert {"node": "entry", "transfer": "queue", "queue": "general"} in row2.ivr_path
    assert {"node": "entry", "transfer": "seat", "seat": "8001"} in row2.ivr_path
    # Each agent who took the call has a recording of their own.
    everyone = {"caller", "agent", "agent-2", "agent-3"}
    assert lab.wait_for(
        lambda: {r.leg for r in recordings(db, call2) if r.complete} == everyone, timeout=10
    ), [(r.leg, r.complete) for r in recordings(db, call2)]
    assert lab.wait_for(lambda: not centre.stuck(), timeout=5), centre.stuck()


def test_an_attended_transfer_lets_the_agent_talk_to_the_colleague_first_and_a_cancelled_one_returns(
    centre: Centre, db: sessionmaker[Session]
) -> None:
    lab, acd = centre.softswitch, centre.acd
    centre.seat_phone("8001")
    centre.ready("8001")
    caller, call_id, seat1 = bridged(centre, "13800000065", "8001")
    seat2 = centre.seat_phone("8002")

    # A colleague who is not ready cannot be consulted.
    assert control(centre, call_id, Action.CONSULT, "8002", seat="8001")["error"] == "seat_busy"
    centre.ready("8002")
    assert control(centre, call_id, Action.CONSULT, "8002", seat="8001")["ok"] is True  # 8002 answered
    assert seat2.expect("incoming")
    assert acd.seat("8001").state is SeatState.HELD and acd.seat("8002").state is SeatState.TALKING
    seat1.send(f"play {centre.voices / 'seat.wav'}")  # "这位市民反映…", said to the colleague only
    pause(centre, 2.3)
    assert control(centre, call_id, Action.COMPLETE_TRANSFER, seat="8001")["ok"] is True
    assert seat1.expect("disconnected")
    caller.send(f"play {centre.voices / 'caller.wav'}")  # the caller now talks to 8002
    pause(centre, 2.3)
    assert lab.wait_for(lambda: acd.seat("8001").state in (SeatState.WRAP_UP, SeatState.READY), timeout=5)
    assert acd.seat("8002").state is SeatState.TALKING

    # 8002 consults 8001 in turn and thinks better of it: the caller is back with 8002.
    assert lab.wait_for(lambda: acd.seat("8001").state is SeatState.READY, timeout=10)
    assert control(centre, call_id, Action.CONSULT, "8001", seat="8001")["error"] == "not_your_call"
    assert control(centre, call_id, Action.CONSULT, "8001", seat="8002")["ok"] is True
    assert seat1.expect("incoming")
    assert control(centre, call_id, Action.CANCEL_CONSULT, seat="8002")["ok"] is True
    assert seat1.expect("disconnected")
    assert lab.wait_for(lambda: acd.seat("8002").state is SeatState.TALKING, timeout=5)

    caller.send("hangup")
    caller_heard = caller.heard()
    seat2.expect("disconnected")
    seat2_heard = seat2.heard()
    assert tone_share(seat2_heard, SEAT_HZ) > 0.5  # the consultation
    assert tone_share(seat2_heard, CALLER_HZ) > 0.5  # then the caller
    assert tone_share(caller_heard, SEAT_HZ) < 0.2  # who did not hear the agents consult
    row = closed(db, lab, call_id)
    assert {"node": "entry", "transfer": "attended", "seat": "8002"} in row.ivr_path
    assert lab.wait_for(lambda: not centre.stuck(), timeout=10), centre.stuck()
    assert lab.wait_for(
        lambda: (
            {r.leg for r in recordings(db, call_id) if r.complete}
            == {"caller", "agent", "agent-2", "agent-3"}
        ),
        timeout=10,
    )
