"""The trunk: the hotline registers to a carrier's registrar, takes its calls and calls out through it."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Call
from hotline.settings import Settings
from ivr import kamailio, outbound, registrar
from tests.ivr.conftest import wait_for
from tests.ivr.lab import event
from tests.ivr.test_kamailio import _count_ok, _request, _send

if TYPE_CHECKING:
    from tests.ivr.conftest import Softswitch

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(kamailio.find_binary(Settings()) is None, reason="kamailio is not installed"),
]
SCENARIOS = Path(__file__).parent / "scenarios"
USER, PASSWORD = "hotline-lps", "s3cret:pw"


def _carrier(softswitch: Softswitch, scenario: str, port: int, calls: int = 0) -> subprocess.Popen[bytes]:
    """SIPp as the carrier's side on 127.0.0.1:`port`, checking digests for USER / PASSWORD;
    with `calls`, it exits once that many have run (0 when each went as scripted)."""
    argv = ["sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port)]
    argv += ["-m", str(calls)] if calls else []
    argv += ["-key", "user", USER, "-key", "password", PASSWORD, "-mp", str(softswitch.ports(4))]
    argv += ["-trace_logs", "-log_file", str(softswitch.root / f"{scenario}.log"), "-nostdin"]
    argv += ["-timeout", "40", "-timeout_error"]
    with (softswitch.root / f"{scenario}.out").open("wb") as out:
        return subprocess.Popen(argv, cwd=softswitch.root, stdout=out, stderr=subprocess.STDOUT)


def _with_trunk(softswitch: Softswitch, registrar: int, **more: object) -> None:
    softswitch.settings = softswitch.settings.model_copy(
        update={
            "trunk_registrar": f"127.0.0.1:{registrar}",
            "trunk_username": USER,
            "trunk_password": SecretStr(PASSWORD),
            "trunk_expires_s": 30,
            **more,
        }
    )


def _flood(sock: socket.socket, port: int, seconds: float = 1.5) -> tuple[int, int]:
    """OPTIONS at a scanner's pace from `sock`: (sent, answered)."""
    sent = answered = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        sock.sendto(_request("OPTIONS", f"sip:127.0.0.1:{port}"), ("127.0.0.1", port))
        sent += 1
        answered += _count_ok(sock, wait_s=0.0)
        time.sleep(0.002)
    return sent, answered + _count_ok(sock, wait_s=0.5)


def test_the_hotline_registers_with_a_digest_refreshes_in_time_and_takes_the_carriers_calls(
    softswitch: Softswitch,
) -> None:
    registrar = softswitch.ports(1)
    carrier_sbc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    carrier_sbc.bind(("127.0.0.1", 0))
    sbc = f"127.0.0.1:{carrier_sbc.getsockname()[1]}"
    sipp = _carrier(softswitch, "trunk_registrar.xml", registrar, calls=1)
    _with_trunk(softswitch, registrar, trunk_addresses=(sbc,))
    softswitch.worker(0)
    softswitch.kamailio(workers=1)
    port = softswitch.settings.sip_port

    # While the registration runs: the carrier's addresses are never cut off, a stranger is.
    with carrier_sbc, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.1", 0))
        sent, answered = _flood(carrier_sbc, port)
        assert sent > 400 and answered == sent
        sent, answered = _flood(stranger, port)
        assert answered < sent / 2

    # 401, then a good digest: registered for 10 s, and refreshed before they ran out.
    assert sipp.wait(timeout=40) == 0, (softswitch.root / "trunk_registrar.xml.out").read_text()
    logged = (softswitch.root / "trunk_registrar.xml.log").read_text().split("\n")
    contacts = [line for line in logged if line.startswith("registered")]
    assert contacts == [f"registered 12345@127.0.0.1:{port} as sip:12345@127.0.0.1:{port}"] * 2

    # The carrier delivers a call to the registered contact: a worker answers it as 12345.
    call = softswitch.sipp(port, talk_ms=500)
    assert call.wait() == 0, call.output()
    assert event(softswitch, "call.arrived")["called"] == "12345"


def test_a_call_to_a_number_goes_out_through_the_trunk_answering_its_challenge(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session]
) -> None:
    carrier = softswitch.ports(1)
    sipp = _carrier(softswitch, "trunk_carrier.xml", carrier)
    _with_trunk(softswitch, carrier)
    softswitch.worker(0, env={"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir)})
    softswitch.kamailio(workers=1)
    try:
        request_id = outbound.originate(softswitch.redis, "13900000001", "notice", {"prompts": ["greeting"]})
        done = event(softswitch, "outbound.result", timeout=20, request_id=request_id)
    finally:
        sipp.kill()
        sipp.wait()
    assert done["result"] == "answered" and done["heard"] is True
    logged = (softswitch.root / "trunk_carrier.xml.log").read_text()
    assert f"answered 13900000001 for {USER}" in logged
    with db() as session:
        row = session.scalars(select(Call).where(Call.call_id == done["call_id"])).one()
    assert row.direction == "out" and row.callee == "13900000001" and row.answered_at is not None


def test_trunk_and_codec_settings_read_as_an_operator_writes_them(tmp_path: Path) -> None:
    from hotline.settings import load_settings
    from ivr import trunk, worker

    env = {
        "HOTLINE_SIP_CODECS": "PCMU/8000, PCMA/8000",
        "HOTLINE_TRUNK_REGISTRAR": "127.0.0.1",
        "HOTLINE_TRUNK_ADDRESSES": "127.0.0.2:5080, [::1]",
        "HOTLINE_TRUNK_PASSWORD": "p:w",
    }
    settings = load_settings(environ=env, config_file=tmp_path / "absent.toml")
    assert worker.edge_config(settings, 0).codecs == ("PCMU/8000", "PCMA/8000")
    found = trunk.from_settings(settings, tmp_path / "db")
    assert found is not None and found.proxy == "127.0.0.1:5060" and found.username == "12345"
    assert found.peers == (("127.0.0.1", 5060), ("127.0.0.2", 5080), ("::1", None))
    assert settings.masked()["trunk_password"] == "********"  # `hotline config show` hides it
    # DNS down at start: the hotline still starts; only that host's pike exemption is missing.
    unresolved = settings.model_copy(update={"trunk_registrar": "no-such-host.invalid"})
    found = trunk.from_settings(unresolved, tmp_path)
    assert found is not None and found.proxy == "no-such-host.invalid:5060"
    assert found.peers == (("127.0.0.2", 5080), ("::1", None))


def _menu_transferring_to(number: str) -> str:
    return (
        'start = "entry"\n[nodes.entry]\nprompts = ["greeting", "recording_notice", "menu_main"]\n'
        f'[nodes.entry.options]\n"0" = "queue:general"\n"5" = "transfer:{number}"\n'
    )


def _transferred_to(port: int, number: str) -> str:
    """What the edge answers a phone's INVITE to `number` made on a transfer (Referred-By)."""
    invite = _request("INVITE", f"sip:{number}@127.0.0.1:{port}").replace(
        b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nReferred-By: <sip:12345@127.0.0.1>\r\n"
    )
    return _send(port, invite)


def test_a_transfer_the_menu_offers_goes_out_through_the_trunk_and_no_other_number_does(
    softswitch: Softswitch, tone_prompt_dir: Path, tmp_path: Path
) -> None:
    menu = tmp_path / "menu.toml"
    menu.write_text(_menu_transferring_to("12319"))
    carrier = softswitch.ports(1)
    sipp = _carrier(softswitch, "trunk_carrier.xml", carrier)
    _with_trunk(softswitch, carrier, ivr_menu=menu)
    softswitch.worker(0, env={"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir), "HOTLINE_IVR_MENU": str(menu)})
    softswitch.kamailio(workers=1)
    softswitch.registrar(env={"HOTLINE_IVR_MENU": str(menu)})
    rpc = registrar.kamcmd(softswitch.settings)
    assert wait_for(lambda: "12319" in rpc(["htable.dump xfer"]), timeout=10), "transfer numbers not pushed"
    # Any other number a phone claims to be transferred to stays inside (no calls at our cost).
    port = softswitch.settings.sip_port
    assert _transferred_to(port, "0044201234567").startswith("SIP/2.0 404")
    try:
        phone = softswitch.phone("13800138000")
        phone.call(softswitch.uri())
        phone.send("dtmf 5")
        # The citizen's phone calls 12319 at the edge; the carrier answers once challenged.
        assert event(softswitch, "call.transferred", timeout=15)["number"] == "12319"
    finally:
        sipp.kill()
        sipp.wait()
    assert f"answered 12319 for {USER}" in (softswitch.root / "trunk_carrier.xml.log").read_text()

    # The administrators change the number (/admin/menu writes the file): the edge follows within
    # a registrar round, with no restart; the old number no longer goes out.
    menu.write_text(_menu_transferring_to("12320"))
    os.utime(menu, (time.time() + 1, time.time() + 1))  # a new mtime even on a coarse clock
    followed = wait_for(lambda: "12319" not in (dump := rpc(["htable.dump xfer"])) and "12320" in dump)
    assert followed, rpc(["htable.dump xfer"])
    assert _transferred_to(port, "12319").startswith("SIP/2.0 404")
    assert _transferred_to(port, "12320").startswith("SIP/2.0 100")  # relayed towards the carrier
