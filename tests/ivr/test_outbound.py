"""Outbound calls: asked for over Redis, dialled by exactly one worker, reported; 回访 by phone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Call, Disposition
from hotline import bus
from hotline.db import transaction, utcnow
from hotline.settings import Settings
from ivr import outbound
from recordings.storage import file_sha256
from tests.ivr.lab import Phone, event, recordings, tone, tone_share, write_wav
from tickets.deadlines import LOCAL
from tickets.lifecycle import Action
from tickets.models import Channel, Ticket, TicketStatus
from tickets.models_outcomes import Notification, Rating, Satisfaction
from tickets.service import apply, create_ticket

if TYPE_CHECKING:
    from tests.ivr.conftest import Softswitch

pytestmark = pytest.mark.sip
CITIZEN = "13900000001"
VOICE_HZ = 2900.0  # what the citizen "says" in a call: a tone the recording must hold


def _citizen(softswitch: Softswitch) -> tuple[Phone, str]:
    """A citizen's phone (auto-answering) and the SIP URI the hotline dials it at."""
    port = softswitch.ports(1)
    phone = Phone(port, softswitch.ports(10), CITIZEN, softswitch.root / f"citizen-{port}.wav")
    softswitch.phones.append(phone)  # quit at the end of the test
    return phone, f"sip:{CITIZEN}@127.0.0.1:{port}"


def _cdr(db: sessionmaker[Session], call_id: str) -> Call:
    with db() as session:
        return session.scalars(select(Call).where(Call.call_id == call_id)).one()


def _recorded(softswitch: Softswitch, db: sessionmaker[Session], call_id: str) -> Path:
    """The callee's leg of an outbound call: one complete recording whose sha256 matches; its file."""
    complete = softswitch.wait_for(lambda: [r for r in recordings(db, call_id) if r.complete] or None)
    assert complete, recordings(db, call_id)
    (recording,) = complete
    path = softswitch.settings.recordings_dir / recording.path
    assert recording.leg == "caller" and recording.sha256 == file_sha256(path)
    return path


def test_one_worker_dials_a_request_that_waited_for_it_and_busy_and_no_answer_are_reported(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session]
) -> None:
    phone, target = _citizen(softswitch)
    # Asked for before any worker runs: it waits, and asking twice with one id asks once.
    first = outbound.originate(softswitch.redis, target, "notice", {"prompts": ["greeting"]}, request_id="n1")
    assert outbound.originate(softswitch.redis, target, "notice", request_id="n1") == first
    assert outbound.status(softswitch.redis, first)["state"] == "pending"

    env = {"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir)}
    softswitch.worker(0, env=env)
    softswitch.worker(1, env=env)
    phone.expect("incoming", timeout=10)  # the phone answers at once and hears the message
    done = event(softswitch, "outbound.result", timeout=15, request_id=first)
    assert done["result"] == "answered" and done["heard"] is True and done["scene"] == "notice"
    assert len(softswitch.events("outbound.dialing")) == 1  # two workers, one call
    row = _cdr(db, done["call_id"])
    assert row.direction == "out" and row.callee == target and row.disposition is Disposition.ANSWERED
    assert row.answered_at is not None and row.ended_at is not None
    assert outbound.status(softswitch.redis, first)["result"] == "answered"
    _recorded(softswitch, db, done["call_id"])  # recorded, after the notice, like a call in

    # The citizen declines the call: busy. Then lets it ring: no answer, once ring_s has passed.
    phone.send("autoanswer off")
    phone.expect("autoanswer")
    busy = outbound.originate(softswitch.redis, target, "notice")
    phone.expect("incoming")
    phone.send("hangup")
    assert event(softswitch, "outbound.result", request_id=busy)["result"] == "busy"
    quiet = outbound.originate(softswitch.redis, target, "notice", ring_s=1.0)
    phone.expect("incoming")
    unanswered = event(softswitch, "outbound.result", request_id=quiet)
    assert unanswered["result"] == "no_answer"
    assert _cdr(db, unanswered["call_id"]).disposition is Disposition.NO_ANSWER


def test_a_request_whose_worker_died_is_dialled_by_another(
    softswitch: Softswitch, db: sessionmaker[Session]
) -> None:
    phone, target = _citizen(softswitch)
    request_id = outbound.originate(softswitch.redis, target, "notice")
    # A worker claimed it and died: it never renews its lease, which runs out.
    claimed = outbound.claim(softswitch.redis, "sip-worker-gone", lease_s=2.0)
    assert claimed is not None and claimed.id == request_id
    assert outbound.claim(softswitch.redis, "sip-worker-other") is None  # leased: not twice
    softswitch.worker(0, public=True)
    done = event(softswitch, "outbound.result", timeout=15, request_id=request_id)
    assert done["result"] == "answered" and done["worker"] == "sip-worker-0"

    # A number needs Kamailio and its trunk: a worker that is the public address itself fails it
    # rather than ringing its own IVR.
    number = outbound.originate(softswitch.redis, CITIZEN, "notice")
    assert event(softswitch, "outbound.result", request_id=number)["result"] == "failed"
    assert len(softswitch.events("call.arrived")) == 0

    # A scene nobody wrote rings nobody.
    unknown = outbound.originate(softswitch.redis, target, "advert")
    assert event(softswitch, "outbound.result", request_id=unknown)["result"] == "failed"

    # A request its scene cannot use leaves no silent line open: the hotline hangs up.
    broken = outbound.originate(softswitch.redis, target, "revisit", {})
    assert event(softswitch, "outbound.result", request_id=broken)["scene_error"] is True


def _resolved_directly(db: sessionmaker[Session]) -> tuple[int, str]:
    with transaction(db) as session:
        ticket = create_ticket(session, channel=Channel.PHONE, content="社保卡怎么补办", caller_phone=CITIZEN)
        apply(session, ticket, Action.RESOLVE_DIRECTLY, note="携带身份证到社保窗口补办。")
        return ticket.id, ticket.number


@pytest.mark.parametrize(
    ("key", "level", "status"),
    [
        ("1", Satisfaction.SATISFIED, TicketStatus.CLOSED),
        # 不满意: the centre is told to take it up again (a direct answer has no department).
        ("3", Satisfaction.DISSATISFIED, TicketStatus.REVISITED),
    ],
)
def test_a_revisit_call_reads_the_outcome_and_stores_the_key_the_citizen_pressed(
    softswitch: Softswitch,
    tone_prompt_dir: Path,
    db: sessionmaker[Session],
    key: str,
    level: Satisfaction,
    status: TicketStatus,
) -> None:
    ticket_id, number = _resolved_directly(db)
    softswitch.worker(0, env={"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir)})
    phone, target = _citizen(softswitch)
    request_id = outbound.originate(softswitch.redis, target, "revisit", {"ticket_id": ticket_id})
    phone.expect("media")
    event(softswitch, "outbound.answered", request_id=request_id)
    softswitch.wait_for(lambda: False, timeout=0.7)  # hello and the recording notice
    phone.send(f"play {write_wav(softswitch.root / 'voice.wav', tone(0.8, VOICE_HZ))}")  # "喂？"
    softswitch.wait_for(lambda: False, timeout=1.0)  # listening to the read-out
    phone.send(f"dtmf {key}")
    assert phone.expect("disconnected", timeout=15) == "disconnected 200"  # thanked, then goodbye

    done = event(softswitch, "outbound.result", request_id=request_id)
    assert done["result"] == "answered" and done["revisit"] == "rated" and done["rating"] == level.value
    with db() as session:
        ticket = session.get_one(Ticket, ticket_id)
        rating = session.scalars(select(Rating).where(Rating.ticket_id == ticket_id)).one()
        assert rating.level is level and rating.channel == "ivr"
        assert ticket.status is status, number
        told = session.scalars(select(Notification.kind).where(Notification.ticket_id == ticket_id)).all()
        assert ("ticket.unsatisfied" in told) is (key == "3")
    path = _cdr(db, done["call_id"]).ivr_path
    assert {"revisit": "rated", "key": key, "rating": level.value} in path
    assert tone_share(_recorded(softswitch, db, done["call_id"]), VOICE_HZ) > 0.5  # the citizen's words kept


def test_a_revisit_call_with_a_wrong_key_then_none_asks_again_then_leaves_the_ticket_unrated(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session]
) -> None:
    ticket_id, _number = _resolved_directly(db)
    softswitch.worker(0, env={"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir)})
    phone, target = _citizen(softswitch)
    data = {"ticket_id": ticket_id, "key_wait_s": 2}  # the shortest wait a request may ask for
    request_id = outbound.originate(softswitch.redis, target, "revisit", data)
    phone.expect("media")
    event(softswitch, "outbound.answered", request_id=request_id)
    softswitch.wait_for(lambda: False, timeout=1.7)  # hello, the recording notice, the read-out
    phone.send("dtmf 9")  # not one of 1/2/3: "invalid input", the question again, then silence
    assert phone.expect("disconnected", timeout=40) == "disconnected 200"  # the hotline said goodbye
    done = event(softswitch, "outbound.result", request_id=request_id)
    assert done["result"] == "answered" and done["revisit"] == "no_input" and "rating" not in done
    path = _cdr(db, done["call_id"]).ivr_path
    assert {"revisit": "invalid", "key": "9"} in path and {"revisit": "no_input"} in path
    with db() as session:
        assert session.scalars(select(Rating).where(Rating.ticket_id == ticket_id)).all() == []
        assert session.get_one(Ticket, ticket_id).status is TicketStatus.RESOLVED_DIRECTLY


def test_due_revisits_are_requested_by_dotted_name_once_per_window_and_only_in_the_daytime(
    db: sessionmaker[Session], redis_client: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rq import Queue

    from tickets import jobs, revisit_calls

    monkeypatch.setenv("DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("REDIS_URL", settings.effective_redis_url)
    jobs._context.cache_clear()
    ticket_id, _number = _resolved_directly(db)
    later_day = utcnow() + dt.timedelta(days=15)  # past the next working day, even after a holiday
    morning = dt.datetime.combine(later_day.astimezone(LOCAL).date(), dt.time(10), LOCAL)
    try:
        assert revisit_calls.request_calls(morning.replace(hour=23))["requested"] == []  # night
        first = revisit_calls.request_calls(morning)["requested"]
        assert revisit_calls.request_calls(morning + dt.timedelta(minutes=10))["requested"] == first
        later = revisit_calls.request_calls(morning + dt.timedelta(hours=3))["requested"]
        assert len(first) == len(later) == 1 and first != later
        # What the RQ worker does with the jobs: the softswitch's request queue gets one call each.
        rq_redis = bus.connect(settings.effective_redis_url, decode_responses=False)
        queue = Queue(revisit_calls.QUEUE, connection=rq_redis)
        for job in queue.get_jobs():
            assert job.func_name == "ivr.outbound.originate_job"
            job.perform()
        rq_redis.close()
    finally:
        jobs._context()[1].kw["bind"].dispose()
        jobs._context.cache_clear()
    request = outbound.claim(redis_client, "sip-worker-0")
    assert request is not None and request.request is not None
    assert request.request.target == CITIZEN and request.request.scene == "revisit"
    assert request.request.data["ticket_id"] == ticket_id and request.id == first[0]
    assert redis_client.zcard(outbound.PENDING) == 2  # the other window's request waits its turn
