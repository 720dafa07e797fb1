"""The supervisor restarts a crashed part quickly, says why, and leaves nothing behind."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

import pytest

from hotline.supervisor import ChildSpec, Supervisor
from tests.helpers import wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
# A child that forks a grandchild, as Kamailio and gunicorn do.
FORKER = ["sh", "-c", "sleep 120 & sleep 120"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().split(")")[-1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry))
    return members


@pytest.fixture
def supervisor() -> object:
    sup = Supervisor([ChildSpec("sleeper", SLEEPER), ChildSpec("forker", FORKER)], backoff_s=0.5)
    thread = threading.Thread(target=sup.run, daemon=True)
    thread.start()
    assert wait_until(lambda: sup.pid("sleeper") is not None and sup.pid("forker") is not None)
    yield sup
    sup.request_stop()
    thread.join(timeout=20)


def test_a_killed_child_is_restarted_within_5_seconds_with_the_reason_logged(
    supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hotline.supervisor")
    old = supervisor.pid("sleeper")
    assert old is not None
    os.kill(old, signal.SIGKILL)
    killed_at = time.monotonic()
    assert wait_until(lambda: supervisor.pid("sleeper") not in (None, old), timeout=5)
    assert time.monotonic() - killed_at < 5
    new = supervisor.pid("sleeper")
    assert new is not None and _alive(new)
    assert any("sleeper exited with signal SIGKILL" in r.getMessage() for r in caplog.records)
    # The other child was not disturbed.
    assert supervisor.pid("forker") is not None


def test_repeated_crashes_back_off(supervisor: Supervisor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hotline.supervisor")
    for _ in range(3):
        pid = supervisor.pid("sleeper")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda pid=pid: supervisor.pid("sleeper") not in (None, pid), timeout=10)  # type: ignore[misc]
    delays = [
        r.getMessage().rsplit("restarting in ", 1)[1]
        for r in caplog.records
        if "restarting in" in r.getMessage()
    ]
    assert delays == ["0.5s", "1.0s", "2.0s"]


def test_stopping_leaves_no_process_behind_including_grandchildren(supervisor: Supervisor) -> None:
    forker = supervisor.pid("forker")
    sleeper = supervisor.pid("sleeper")
    assert forker is not None and sleeper is not None
    assert wait_until(lambda: len(_group_members(forker)) >= 2)  # sh and its background sleep
    supervisor.request_stop()
    assert wait_until(lambda: not _group_members(forker) and not _alive(sleeper), timeout=15)


def test_a_dead_childs_forked_processes_are_cleaned_up_before_restart(supervisor: Supervisor) -> None:
    forker = supervisor.pid("forker")
    assert forker is not None
    assert wait_until(lambda: len(_group_members(forker)) >= 2)
    os.kill(forker, signal.SIGKILL)  # the grandchild would keep running (and keep ports) otherwise
    assert wait_until(lambda: not _group_members(forker), timeout=5)
    assert wait_until(lambda: supervisor.pid("forker") not in (None, forker), timeout=5)
