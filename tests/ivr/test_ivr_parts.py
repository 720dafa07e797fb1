"""The IVR's pure parts: collecting keys, timers, chained prompts, numbers read aloud, who hears a status."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ivr import cdr
from ivr.digits import DigitCollector
from ivr.playback import Playback, PromptBook, spoken_digits
from ivr.queue_wait import position_prompts, wait_prompts
from ivr.timers import Timer, Timers
from tests.ivr.lab import tone, write_wav
from tickets.models import Channel
from tickets.service import create_ticket


def test_keys_complete_an_entry_at_its_length_at_hash_or_as_soon_as_it_is_unambiguous() -> None:
    menu = DigitCollector(1, ["0", "1"])
    assert menu.feed("1") == "1"
    two = DigitCollector(2, ["11", "12", "3"])
    assert two.feed("1") is None and two.feed("2") == "12"
    assert two.feed("3") == "3"  # nothing longer starts with 3: no need to wait
    assert two.feed("1") is None and two.feed("#") == "1"  # ended early: an (invalid) "1"
    assert two.feed("#") == "#"  # a lone # is reported, not swallowed
    number = DigitCollector(16)
    for key in "20261127":
        assert number.feed(key) is None
    assert number.flush() == "20261127" and number.flush() == ""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_timers_fire_in_order_once_and_not_after_cancel() -> None:
    clock = Clock()
    timers = Timers(clock)
    fired: list[str] = []
    timers.call_later(2.0, lambda: fired.append("b"))
    timers.call_later(1.0, lambda: fired.append("a"))
    timers.call_later(1.5, lambda: fired.append("x")).cancel()
    assert timers.next_delay() == 1.0 and len(timers) == 2
    clock.now = 1.9
    assert timers.run_due() == 1 and fired == ["a"]
    clock.now = 5.0
    timers.run_due()
    assert fired == ["a", "b"] and timers.next_delay() is None


class FakeLeg:
    def __init__(self) -> None:
        self.played: list[str] = []
        self.stopped = 0

    def play(self, path: Path) -> bool:
        self.played.append(path.stem)
        return True

    def stop_playback(self) -> None:
        self.stopped += 1


class FakeScheduler:
    def __init__(self, timers: Timers) -> None:
        self.timers = timers

    def call_later(self, delay_s: float, job: Callable[[], None]) -> Timer:
        return self.timers.call_later(delay_s, job)


@pytest.fixture
def book(tmp_path: Path) -> PromptBook:
    for name, seconds in (("greeting", 1.0), ("menu_main", 2.0), ("digit_1", 0.5)):
        write_wav(tmp_path / f"{name}.wav", tone(seconds, 440))
    return PromptBook(tmp_path)


def test_a_sequence_plays_clip_after_clip_skips_missing_ones_and_stops_silently(book: PromptBook) -> None:
    clock, leg = Clock(), FakeLeg()
    timers = Timers(clock)
    playback = Playback(leg, book, FakeScheduler(timers))
    done: list[str] = []
    playback.play(["greeting", "not_rendered", "menu_main"], on_done=lambda: done.append("done"))
    assert leg.played == ["greeting"] and book.seconds(["greeting", "menu_main"]) == pytest.approx(3.0)
    clock.now = 1.1
    timers.run_due()
    assert leg.played == ["greeting", "menu_main"] and not done
    clock.now = 3.2
    timers.run_due()
    assert done == ["done"] and not playback.playing

    playback.play(["greeting"], on_done=lambda: done.append("again"))
    playback.stop()
    clock.now = 10.0
    timers.run_due()
    assert done == ["done"] and leg.stopped >= 1  # stopped: silence, and no callback


def test_numbers_are_read_digit_by_digit_in_groups_and_positions_as_counts() -> None:
    assert spoken_digits("20261127-0042") == [
        *(f"digit_{d}" for d in "2026"),
        "pause",
        *(f"digit_{d}" for d in "1127"),
        "pause",
        *(f"digit_{d}" for d in "0042"),
    ]
    assert position_prompts(0) == []
    assert position_prompts(1) == ["queue_position_before", "count_1", "queue_position_after"]
    assert position_prompts(5)[1] == "digit_5"
    assert position_prompts(12) == ["queue_position_many"]
    assert wait_prompts(0) == []
    assert wait_prompts(30) == ["queue_wait_before", "count_1", "queue_wait_minutes"]
    assert wait_prompts(250)[1] == "digit_5" and wait_prompts(900) == ["queue_wait_long"]


def test_a_ticket_status_is_told_only_to_the_number_that_reported_it(db: sessionmaker[Session]) -> None:
    with db() as session, session.begin():
        number = create_ticket(
            session, channel=Channel.PHONE, content="噪音", caller_phone="+86 138-0013-8000"
        ).number
    digits = number.replace("-", "")
    found = cdr.lookup_status(db, digits, "13800138000")
    assert found is not None and found.number == number and found.status.value == "accepted"
    assert cdr.lookup_status(db, digits, "008613800138000") is not None
    assert cdr.lookup_status(db, digits, "13900139000") is None  # somebody else's ticket
    assert cdr.lookup_status(db, digits, "") is None  # an anonymous caller
    assert cdr.lookup_status(db, digits[:-1] + "9", "13800138000") is None  # no such ticket
