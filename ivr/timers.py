"""Timers for the pjsua2 thread: a heap of deadlines that its loop runs between polls (no threads).

IVR timeouts (no input, inter-digit, prompt ends, hold cycles) are deadlines of a few seconds that
must fire on the thread that owns the calls; the worker loop asks `next_delay()` how long it may
wait in `libHandleEvents` and calls `run_due()` after each wait.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Timer:
    """A pending call; `cancel()` is idempotent and safe after it fired."""

    __slots__ = ("due", "fn", "cancelled")

    def __init__(self, due: float, fn: Callable[[], None]) -> None:
        self.due = due
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()  # ties keep their order

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> Timer:
        timer = Timer(self.clock() + max(0.0, delay_s), fn)
        heapq.heappush(self._heap, (timer.due, next(self._seq), timer))
        return timer

    def next_delay(self) -> float | None:
        """Seconds until the earliest live timer (0 when one is due), None when there is none."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        if not self._heap:
            return None
        return max(0.0, self._heap[0][0] - self.clock())

    def run_due(self) -> int:
        """Run every timer that is due; a failing one is logged and does not stop the others."""
        ran = 0
        now = self.clock()
        while self._heap and self._heap[0][0] <= now:
            _due, _seq, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            timer.cancelled = True
            ran += 1
            try:
                timer.fn()
            except Exception:
                log.exception("timer callback failed")
        return ran

    def __len__(self) -> int:
        return sum(1 for _d, _s, t in self._heap if not t.cancelled)
