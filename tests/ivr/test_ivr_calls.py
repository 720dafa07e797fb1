"""The IVR as callers meet it: a pjsua2 phone, SIPp and baresip call 12345 and land where the menu says."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Disposition
from acd.store import AcdStore
from ivr.menu import DEFAULT_MENU
from recordings.storage import file_sha256
from tests.ivr.lab import CALLER, Baresip, best_match, cdr, closed, event, recordings
from tickets.models import Channel
from tickets.service import create_ticket

if TYPE_CHECKING:
    from tests.ivr.conftest import Softswitch

pytestmark = pytest.mark.sip


def test_a_phone_hears_the_greeting_presses_0_and_waits_for_a_person(
    softswitch: Softswitch, spoken_greeting_dir: Path, db: sessionmaker[Session]
) -> None:
    worker = softswitch.worker(0, public=True, env={"HOTLINE_PROMPTS_DIR": str(spoken_greeting_dir)})
    phone = softswitch.phone(CALLER)
    phone.call(softswitch.uri())
    arrived = event(softswitch, "call.arrived")
    call_id = arrived["call_id"]
    phone.send("dtmf 0")  # during the greeting: kept until the recording notice has played

    queued = event(softswitch, "call.queued", timeout=15)
    assert queued["queue"] == "general" and queued["position"] == 1 and queued["call_id"] == call_id
    acd = AcdStore(softswitch.redis)
    assert acd.waiting("general") == [call_id]
    row = cdr(db, call_id)
    assert row is not None and row.disposition is Disposition.IN_PROGRESS and row.queue == "general"
    assert row.caller == CALLER and row.answered_at is not None and row.queued_at is not None
    assert {"node": "entry", "input": "0", "via": "dtmf", "action": "queue"} in row.ivr_path
    # The supervisors' wallboards are told at once (the web relays an event to the rooms it names).
    for type_ in ("call.arrived", "call.queued"):
        assert all("role:supervisor" in e.rooms for e in softswitch.events(type_)), type_

    softswitch.wait_for(lambda: False, timeout=1.0)  # on hold for a moment
    phone.send("hangup")
    phone.heard()
    row = closed(db, softswitch, call_id)
    assert row.disposition is Disposition.ABANDONED_QUEUE
    assert softswitch.wait_for(lambda: acd.waiting("general") == [], timeout=3)

    # The caller heard the greeting: what the phone recorded follows the prompt's loudness.
    score, lag = best_match(phone.record, spoken_greeting_dir / "audio" / "zh" / "greeting.wav")
    assert score > 0.8 and lag < 1.0, (score, lag)

    # The caller leg was recorded from after the notice, sealed, and its checksum is the file's.
    (recording,) = softswitch.wait_for(lambda: [r for r in recordings(db, call_id) if r.complete])
    path = softswitch.settings.recordings_dir / recording.path
    assert recording.leg == "caller" and recording.sha256 == file_sha256(path)
    assert 0.5 < recording.duration_s < 2.5  # about the second on hold
    assert "not closed" not in worker.output()  # sealed once the recorder had finished the file


MULTI_DIGIT_MENU = """
start = "entry"
[nodes.entry]
prompts = ["greeting", "recording_notice", "menu_main"]
[nodes.entry.options]
"0" = "queue:general"
"1" = "submenu:more"
"5" = "transfer:12319"
[nodes.more]
prompts = ["menu_main"]
max_digits = 2
interdigit_s = 1.5
[nodes.more.options]
"11" = "queue:enterprise"
"12" = "hangup"
"""


def menu_env(tmp_path: Path, prompts_dir: Path, text: str = MULTI_DIGIT_MENU) -> dict[str, str]:
    menu = tmp_path / "menu.toml"
    menu.write_text(text)
    return {"HOTLINE_PROMPTS_DIR": str(prompts_dir), "HOTLINE_IVR_MENU": str(menu)}


def test_keys_sent_as_sip_info_walk_a_submenu_with_two_digit_entries_and_end_with_a_goodbye(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session], tmp_path: Path
) -> None:
    softswitch.worker(0, public=True, env=menu_env(tmp_path, tone_prompt_dir))
    phone = softswitch.phone(CALLER)
    phone.call(softswitch.uri())
    call_id = event(softswitch, "call.arrived")["call_id"]
    phone.send("info 1")
    event(softswitch, "menu.listening", node="more")
    phone.send("info 1#")  # "1" then "#": too short for this node, so invalid
    event(softswitch, "dtmf", node="more", digits="1")
    phone.send("info 12")  # both keys: the goodbye, then the hotline hangs up
    assert phone.expect("disconnected", timeout=10) == "disconnected 200"

    row = closed(db, softswitch, call_id)
    assert row.disposition is Disposition.SELF_SERVICE
    path = [
        {k: v for k, v in step.items() if k in ("node", "input", "via", "result", "action")}
        for step in row.ivr_path
    ]
    assert path[:5] == [
        {"node": "entry", "via": "start"},
        {"node": "entry", "input": "1", "via": "dtmf", "action": "submenu"},
        {"node": "more", "via": "submenu"},
        {"node": "more", "input": "1", "via": "dtmf", "result": "invalid"},
        {"node": "more", "input": "12", "via": "dtmf", "action": "hangup"},
    ]


def test_sipp_presses_2_with_rfc2833_events_through_kamailio_and_waits_in_the_enterprise_queue(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session]
) -> None:
    softswitch.worker(0, env={"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir)})
    softswitch.kamailio(workers=1)
    caller = softswitch.sipp(softswitch.settings.sip_port, scenario="dtmf_2833.xml", talk_ms=2500)
    queued = event(softswitch, "call.queued", timeout=10)
    assert queued["queue"] == "enterprise"
    assert AcdStore(softswitch.redis).waiting("enterprise") == [queued["call_id"]]
    assert caller.wait() == 0, caller.output()

    row = closed(db, softswitch, queued["call_id"])
    assert row.disposition is Disposition.ABANDONED_QUEUE and row.queue == "enterprise"
    assert {"node": "entry", "input": "2", "via": "dtmf", "action": "queue"} in row.ivr_path


@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip is not installed")
def test_baresip_presses_3_and_a_silent_baresip_is_put_through_to_a_person(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session], tmp_path: Path
) -> None:
    # The shipped menu, with a 2-s wait for a key instead of 5 s.
    menu = DEFAULT_MENU.read_text().replace("timeout_s = 5", "timeout_s = 2")
    assert "timeout_s = 2" in menu
    softswitch.worker(0, public=True, env=menu_env(tmp_path, tone_prompt_dir, menu))
    target = softswitch.uri()
    # Two ports each for SIP: baresip also listens for TLS on the port after its SIP port.
    keys = Baresip(tmp_path / "keys", softswitch.ports(2), softswitch.ports(10), "13700137000", target, 3)
    silent = Baresip(tmp_path / "silent", softswitch.ports(2), softswitch.ports(10), "13600136000", target, 5)
    assert softswitch.arrived(2), keys.output() + silent.output()
    keys.press("3")

    dialect = event(softswitch, "call.queued", caller="13700137000")
    assert dialect["queue"] == "dialect"
    # "Stay on the line": no key within the node's timeout reaches the general queue.
    general = event(softswitch, "call.queued", caller="13600136000", timeout=10)
    assert general["queue"] == "general"
    assert keys.quit() == 0 and silent.quit() == 0
    row = closed(db, softswitch, general["call_id"])
    assert {"node": "entry", "via": "timeout", "result": "fallback"} in row.ivr_path
    # It received our audio (baresip 1.0 cannot write what it hears to a file).
    assert "incoming rtp for 'audio' established" in silent.output()


def test_a_caller_hears_the_status_of_their_own_ticket_and_a_stranger_hears_nothing_about_it(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session]
) -> None:
    with db() as session, session.begin():
        ticket = create_ticket(session, channel=Channel.PHONE, content="路灯不亮", caller_phone=CALLER)
        number = ticket.number
    softswitch.worker(0, public=True, env={"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir)})
    owner, stranger = softswitch.phone(CALLER), softswitch.phone("13900139000")
    keys = "1" + number.replace("-", "") + "#"
    for phone in (owner, stranger):
        phone.call(softswitch.uri())
        phone.send(f"dtmf {keys}")

    heard = event(softswitch, "ivr.ticket_status", found=True, timeout=15)
    assert heard["status"] == "accepted"
    refused = event(softswitch, "ivr.ticket_status", found=False, timeout=15)
    # Both are back in the menu afterwards, not hung up on.
    event(softswitch, "menu.listening", call_id=heard["call_id"], since=heard["_id"], timeout=15)
    for phone in (owner, stranger):
        phone.send("hangup")
    assert closed(db, softswitch, heard["call_id"]).disposition is Disposition.SELF_SERVICE
    row = closed(db, softswitch, refused["call_id"])
    assert row.disposition is Disposition.ABANDONED_IVR
    assert {"node": "entry", "action": "ticket_status", "found": False} in row.ivr_path


@pytest.mark.skipif(shutil.which("kamailio") is None, reason="kamailio is not installed")
def test_a_transfer_is_referred_through_the_edge_and_without_a_trunk_the_caller_gets_a_person(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session], tmp_path: Path
) -> None:
    softswitch.worker(0, env=menu_env(tmp_path, tone_prompt_dir))
    softswitch.kamailio(workers=1)
    phone = softswitch.phone(CALLER)
    phone.call(softswitch.uri())
    phone.send("dtmf 5")

    # The phone is asked to call the number at the edge (REFER), and does.
    edge = f"127.0.0.1:{softswitch.settings.sip_port}"
    assert phone.expect("transfer", timeout=10) == f"transfer sip:12319@{edge}"
    queued = event(softswitch, "call.queued", timeout=10)
    assert queued["queue"] == "general"
    phone.send("hangup")
    row = closed(db, softswitch, queued["call_id"])
    steps = [s for s in row.ivr_path if "transfer" in s]
    assert steps[-1]["result"] == "failed" and steps[-1]["why"].startswith("404")
