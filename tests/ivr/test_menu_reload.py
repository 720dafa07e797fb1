"""A running SIP worker takes a menu saved at /admin/menu when told, without a restart: new calls
get the new menu, a call already in the menu keeps its own, and a broken file keeps the old menu."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.orm import Session, sessionmaker

from hotline.settings import IVR_MENU_RELOAD_CHANNEL
from tests.ivr.lab import Phone, closed, event

if TYPE_CHECKING:
    from tests.ivr.conftest import Softswitch

pytestmark = pytest.mark.sip

MENU = """\
start = "entry"

[nodes.entry]
prompts = ["greeting", "recording_notice", "menu_main"]
timeout_s = 30  # the callers here take their time: nobody is sent on by silence

[nodes.entry.options]
"0" = "queue:general"
"1" = "queue:{queue}"
"""


def publish_menu(softswitch: Softswitch, text: str) -> None:
    """What the admin page does: replace var/ivr/menu.toml in one rename, then announce it."""
    target = softswitch.settings.edited_ivr_menu
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(".menu.toml.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)
    softswitch.redis.publish(IVR_MENU_RELOAD_CHANNEL, "changed")


def caller(softswitch: Softswitch, number: str) -> tuple[Phone, str]:
    """A phone that has called 12345 and is listening to the menu; its call id."""
    phone = softswitch.phone(number)
    phone.call(softswitch.uri())
    call_id = str(event(softswitch, "call.arrived", caller=number)["call_id"])
    event(softswitch, "menu.listening", call_id=call_id, timeout=15)
    return phone, call_id


def press_1(softswitch: Softswitch, phone: Phone, call_id: str) -> str:
    """The queue the caller waits in after pressing 1."""
    phone.send("dtmf 1")
    return str(event(softswitch, "call.queued", call_id=call_id, timeout=15)["queue"])


def test_a_new_menu_reaches_new_calls_without_a_restart_and_a_broken_one_is_ignored(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session]
) -> None:
    softswitch.settings.edited_ivr_menu.parent.mkdir(parents=True)
    softswitch.settings.edited_ivr_menu.write_text(MENU.format(queue="enterprise"), encoding="utf-8")
    worker = softswitch.worker(0, public=True, env={"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir)})
    pid = worker.proc.pid

    early, early_id = caller(softswitch, "13800000001")  # in the menu while it changes
    publish_menu(softswitch, MENU.format(queue="dialect"))
    assert softswitch.wait_for(lambda: "IVR menu reloaded" in worker.output(), timeout=10), worker.output()

    late, late_id = caller(softswitch, "13800000002")
    assert press_1(softswitch, late, late_id) == "dialect"
    assert press_1(softswitch, early, early_id) == "enterprise"  # its call started on the old menu
    for phone, call_id in ((early, early_id), (late, late_id)):
        phone.send("hangup")
        assert closed(db, softswitch, call_id).queue in ("enterprise", "dialect")

    # A broken file (hand-edited, say) is refused by the worker, which keeps the menu it runs.
    publish_menu(softswitch, 'start = "entry"\n[nodes.entry\n')
    assert softswitch.wait_for(lambda: "keeping the current menu" in worker.output(), timeout=10)
    third, third_id = caller(softswitch, "13800000003")
    assert press_1(softswitch, third, third_id) == "dialect"
    third.send("hangup")
    assert closed(db, softswitch, third_id).queue == "dialect"

    assert worker.proc.poll() is None and worker.proc.pid == pid  # never restarted
    assert worker.output().count("IVR menu reloaded") == 1
