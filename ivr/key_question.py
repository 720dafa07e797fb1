"""One question answered by a key: asked, waited for, asked again after silence or a wrong key.

The after-call survey (`ivr.talk_legs.Survey`) and the revisit call (`ivr.revisit_call`) ask the
citizen the same way: the question, a few seconds for a key, once more (a wrong key first hears
"invalid input"), then the scene gives up. Keys pressed while the question is still being read
count. Runs on the pjsua2 thread, like the scenes that use it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ivr.playback import Playback, Scheduler
    from ivr.timers import Timer


class KeyQuestion:
    """Asks `prompt` until one of `keys` is pressed or `retries` more tries are used up.

    `on_key(digit)` once a valid key comes; `on_give_up()` after the last try; `on_miss(digit)`
    for each silence ("") or wrong key, before the question is asked again or given up.
    """

    def __init__(
        self,
        playback: Playback,
        scheduler: Scheduler,
        prompt: str,
        keys: Collection[str],
        wait_s: float,
        retries: int,
        on_key: Callable[[str], None],
        on_give_up: Callable[[], None],
        on_miss: Callable[[str], None] = lambda _digit: None,
    ) -> None:
        self.playback = playback
        self.scheduler = scheduler
        self.prompt = prompt
        self.keys = keys
        self.wait_s = wait_s
        self.retries = retries
        self.on_key = on_key
        self.on_give_up = on_give_up
        self.on_miss = on_miss
        self.tries = 0
        self.open = False  # asked and not yet answered or given up
        self._timer: Timer | None = None

    def ask(self, before: Sequence[str] = ()) -> None:
        """Play `before` (an introduction), then the question, then wait for a key."""
        self.open = True
        self.playback.play([*before, self.prompt], on_done=self._wait)

    def on_dtmf(self, digit: str) -> None:
        if not self.open:
            return
        self.cancel()
        if digit in self.keys:
            self.open = False
            self.on_key(digit)
        else:
            self._missed(digit, ["invalid_input"])

    def cancel(self) -> None:
        """Stop waiting (the call ended, or the scene moved on)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self.cancel()
        self.open = False

    def _wait(self) -> None:
        self.cancel()
        if self.open:
            self._timer = self.scheduler.call_later(self.wait_s, self._silence)

    def _silence(self) -> None:
        self._timer = None
        if self.open:
            self._missed("", [])

    def _missed(self, digit: str, before: list[str]) -> None:
        self.tries += 1
        self.on_miss(digit)
        if self.tries > self.retries:
            self.open = False
            self.on_give_up()
        else:
            self.ask(before)
