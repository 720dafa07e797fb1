"""Runs the hotline's parts as child processes, restarts a crashed one, stops all cleanly.

Each child runs in its own session (process group), so a signal for the child reaches whatever
it forked too (Kamailio's workers, gunicorn's, rq's work horses), and so a Ctrl-C on the
terminal reaches only the supervisor, which then stops the children in reverse start order.
Children also get PR_SET_PDEATHSIG, so even a SIGKILLed supervisor leaves no child behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel for SIGTERM when the parent dies.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class ChildSpec:
    """How to run one part: its argv, extra environment, and how to tell it is up."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    # Called after (re)start; returns when the part answers or raises TimeoutError.
    ready: Callable[[], bool] | None = None
    ready_timeout_s: float = 20.0
    # Seconds to wait after SIGTERM before SIGKILL.
    stop_timeout_s: float = 10.0
    # Shown by `hotline serve` once everything is up ("web http://127.0.0.1:8000").
    listens: str = ""


@dataclass
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = 0.0
    restart_at: float | None = None


class Supervisor:
    """Start children in order, watch them, restart with back-off, stop in reverse order."""

    # A child that ran this long without dying is considered healthy again: back-off resets.
    STABLE_AFTER_S = 60.0

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        poll_s: float = 0.2,
    ) -> None:
        self.children = [_Child(spec) for spec in specs]
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.poll_s = poll_s
        self._stop = threading.Event()

    # Public API ------------------------------------------------------------------------------
    def request_stop(self, *_args: object) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def start_all(self) -> None:
        for child in self.children:
            if self._stop.is_set():
                return
            self._start(child)
            self._wait_ready(child)

    def run(self, on_started: Callable[[], None] | None = None) -> int:
        """Start everything, then watch until asked to stop; returns the exit code."""
        try:
            self.start_all()
            if on_started is not None and not self._stop.is_set():
                on_started()
            while not self._stop.wait(self.poll_s):
                self.watch_once()
        finally:
            self.stop_all()
        return 0

    def watch_once(self) -> None:
        now = time.monotonic()
        for child in self.children:
            proc = child.proc
            if proc is not None and proc.poll() is not None:
                self._on_exit(child, proc.returncode, now)
            elif child.proc is None and child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                log.info("restarting %s (restart #%d)", child.spec.name, child.restarts)
                self._start(child)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            self._stop_child(child)

    def pid(self, name: str) -> int | None:
        for child in self.children:
            if child.spec.name == name and child.proc is not None:
                return child.proc.pid
        return None

    # Internals -------------------------------------------------------------------------------
    def _start(self, child: _Child) -> None:
        env = {**os.environ, **child.spec.env}
        child.proc = subprocess.Popen(
            list(child.spec.argv),
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("started %s (pid %d)", child.spec.name, child.proc.pid)

    def _wait_ready(self, child: _Child) -> None:
        check = child.spec.ready
        if check is None:
            return
        deadline = time.monotonic() + child.spec.ready_timeout_s
        while time.monotonic() < deadline and not self._stop.is_set():
            if child.proc is not None and child.proc.poll() is not None:
                raise RuntimeError(
                    f"{child.spec.name} exited with {describe_exit(child.proc.returncode)} at start"
                )
            if check():
                return
            time.sleep(0.05)
        if not self._stop.is_set():
            raise TimeoutError(f"{child.spec.name} did not become ready in {child.spec.ready_timeout_s:.0f}s")

    def _on_exit(self, child: _Child, returncode: int, now: float) -> None:
        ran_for = now - child.started_at
        # Whatever the dead child forked may still hold its ports (Kamailio's children hold 5060).
        self._signal_group(child, signal.SIGKILL)
        child.proc = None
        if ran_for >= self.STABLE_AFTER_S:
            child.backoff_s = 0.0
        child.backoff_s = min(self.backoff_max_s, child.backoff_s * 2 if child.backoff_s else self.backoff_s)
        child.restart_at = now + child.backoff_s
        log.warning(
            "%s exited with %s after %.1fs; restarting in %.1fs",
            child.spec.name,
            describe_exit(returncode),
            ran_for,
            child.backoff_s,
        )

    def _signal_group(self, child: _Child, sig: signal.Signals) -> None:
        if child.proc is None:
            return
        try:
            os.killpg(child.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _stop_child(self, child: _Child) -> None:
        proc = child.proc
        child.restart_at = None
        if proc is None:
            return
        if proc.poll() is None:
            self._signal_group(child, signal.SIGTERM)
            try:
                proc.wait(timeout=child.spec.stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s did not stop in %.0fs; killing it", child.spec.name, child.spec.stop_timeout_s
                )
        # Leftovers in the group (forked workers) go too, whatever the main process did.
        self._signal_group(child, signal.SIGKILL)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.error("%s (pid %d) survived SIGKILL", child.spec.name, proc.pid)
        child.proc = None
        log.info("stopped %s", child.spec.name)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"
