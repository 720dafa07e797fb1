"""A small call centre for SIP tests: two seats with registered phones, two workers behind
Kamailio with the registrar, and the ACD. The `centre` fixture, shared by the ACD, softphone,
transcript and desk tests (import it with the fixtures it needs from `tests.ivr.conftest`)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.orm import Session, sessionmaker

from acd.history import ChangeRecorder
from acd.models import Seat
from acd.seat_states import SeatEvent, SeatState
from acd.store import AcdStore
from hotline.bus import EventBus
from hotline.db import transaction
from ivr import kamailio
from tests.ivr.lab import Phone, event, tone, write_wav

if TYPE_CHECKING:
    from tests.ivr.conftest import Proc, Softswitch

STANDBY_SEAT = "9999"  # tests.ivr.conftest: the seat that keeps the queues staffed

# Short timers: a test waits seconds, not the production quarter minute.
ACD_ENV = {
    "HOTLINE_ACD_RING_TIMEOUT_S": "3",
    "HOTLINE_ACD_WRAP_UP_S": "1",
    "HOTLINE_ACD_DISPATCH_INTERVAL_S": "0.5",
}
# Voices well above every tone prompt (300 Hz + 37 Hz per prompt): what each side says.
CALLER_HZ, SEAT_HZ = 2900.0, 3300.0
STUCK = {SeatState.OFFERED, SeatState.TALKING, SeatState.HELD}


@dataclass
class Centre:
    """Two seats with registered phones, a pool of two workers behind Kamailio, and the ACD."""

    softswitch: Softswitch
    acd: AcdStore
    passwords: dict[str, str]
    voices: Path
    workers: list[Proc] = field(default_factory=list)
    seat_phones: dict[str, Phone] = field(default_factory=dict)

    def seat_phone(self, extension: str, *, answer: bool = True, password: str = "") -> Phone:
        lab = self.softswitch
        self.acd.upsert_seat(extension, {"general": 1})
        phone = self.phone(extension, password or self.passwords[extension])
        assert phone.expect("registered", timeout=10) == "registered 200"
        if not answer:
            phone.send("autoanswer off")
            phone.expect("autoanswer")
        self.seat_phones[extension] = phone
        # The registrar tells the ACD; only then can the seat be offered calls.
        assert lab.wait_for(lambda: self.acd.seat(extension).registered, timeout=10)
        return phone

    def phone(self, extension: str, password: str) -> Phone:
        lab = self.softswitch
        phone = Phone(
            lab.ports(1),
            lab.ports(10),
            extension,
            lab.root / f"seat-{extension}-{len(lab.phones)}-heard.wav",
            registrar=f"sip:127.0.0.1:{lab.settings.sip_port}",
            password=password,
        )
        lab.phones.append(phone)
        return phone

    def ready(self, extension: str) -> None:
        self.acd.upsert_seat(extension, {"general": 1})
        if self.acd.seat(extension).state is SeatState.LOGGED_OUT:
            self.acd.seat_event(extension, SeatEvent.LOGIN)
        self.acd.seat_event(extension, SeatEvent.READY)

    def caller(self, number: str) -> tuple[Phone, str]:
        """A citizen calls 12345 through Kamailio and presses 0; (their phone, the call id)."""
        lab = self.softswitch
        before = {e.data["call_id"] for e in lab.events("call.arrived")}
        phone = lab.phone(number)
        phone.call(lab.uri())
        arrived = event(lab, "call.arrived", caller=number)
        assert arrived["call_id"] not in before
        phone.send("dtmf 0")
        return phone, str(arrived["call_id"])

    def stuck(self) -> list[str]:
        return [f"{s.extension}:{s.state.value}" for s in self.acd.seats() if s.state in STUCK]


@pytest.fixture
def centre(
    softswitch: Softswitch, tone_prompt_dir: Path, db: sessionmaker[Session], tmp_path: Path
) -> Iterator[Centre]:
    passwords = {ext: secrets.token_urlsafe(12) for ext in ("8001", "8002")}
    with transaction(db) as session:
        for ext, password in passwords.items():
            session.add(Seat(extension=ext, name=f"{ext}座席", sip_password=password, skills={"general": 1}))
    env = {"HOTLINE_PROMPTS_DIR": str(tone_prompt_dir), **ACD_ENV}
    softswitch.env.update(env)
    workers = [softswitch.worker(i) for i in range(2)]
    # As the supervisor does: the passwords are on file before Kamailio starts and loads them.
    softswitch.registrar()
    credentials = kamailio.seat_credentials_path(softswitch.settings)
    assert softswitch.wait_for(lambda: credentials.exists() and "8002" in credentials.read_text())
    softswitch.kamailio(workers=2)
    acd = AcdStore(softswitch.redis, on_change=ChangeRecorder(db, EventBus(softswitch.redis)))
    acd.seat_event(STANDBY_SEAT, SeatEvent.LOGOUT)  # only these two seats staff the centre
    voices = tmp_path / "voices"
    write_wav(voices / "caller.wav", tone(2.0, CALLER_HZ))
    write_wav(voices / "seat.wav", tone(2.0, SEAT_HZ))
    yield Centre(softswitch, acd, passwords, voices, workers)
