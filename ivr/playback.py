"""Playing prompt sequences to a caller: prompt ids to files, and clips chained one after another.

The end of a clip is known from its length (read from its WAV header when the worker starts), not
from pjsua2's end-of-file callback: a timer on the pjsua2 thread starts the next clip, which
keeps every step of a call on that thread and makes a sequence's length known in advance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from recordings.storage import RecordingError, wav_duration

if TYPE_CHECKING:
    from ivr.timers import Timer

log = logging.getLogger(__name__)

# Start the next clip a frame after the previous one should have ended: never cut a word.
CLIP_MARGIN_S = 0.02
PAUSE = "pause"


@dataclass(frozen=True)
class Clip:
    prompt_id: str
    path: Path
    seconds: float


class PromptBook:
    """Every playable prompt of one language, with its length; built once at worker start."""

    def __init__(self, folder: Path, extra: Mapping[str, Path] | None = None) -> None:
        self.folder = folder
        self._clips: dict[str, Clip] = {}
        self._missing: set[str] = set()
        for prompt_id, path in (extra or {}).items():
            self._add(prompt_id, path)
        # Recorded or rendered prompts win over generated tones of the same name.
        for path in sorted(folder.glob("*.wav")) if folder.is_dir() else []:
            self._add(path.stem, path)

    def _add(self, prompt_id: str, path: Path) -> None:
        try:
            self._clips[prompt_id] = Clip(prompt_id, path, wav_duration(path))
        except (OSError, RecordingError) as exc:
            log.warning("prompt %s (%s) is unusable: %s", prompt_id, path, exc)

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self._clips

    def clips(self, prompt_ids: Iterable[str]) -> list[Clip]:
        """The clips that exist, in order; a missing prompt is skipped (and logged once)."""
        found = []
        for prompt_id in prompt_ids:
            clip = self._clips.get(prompt_id)
            if clip is not None:
                found.append(clip)
            elif prompt_id not in self._missing:
                self._missing.add(prompt_id)
                log.warning("prompt %s has no audio in %s; skipping it", prompt_id, self.folder)
        return found

    def seconds(self, prompt_ids: Iterable[str]) -> float:
        return sum(c.seconds for c in self.clips(prompt_ids))


def spoken_digits(number: str, group: int = 4) -> list[str]:
    """Prompt ids reading `number` digit by digit (1 as 幺), with a pause after each group."""
    digits = [d for d in number if d.isdigit()]
    ids: list[str] = []
    for i, digit in enumerate(digits):
        if i and i % group == 0:
            ids.append(PAUSE)
        ids.append(f"digit_{digit}")
    return ids


class Speaker(Protocol):
    """What a playback needs from a call leg (`ivr.sip.SipLeg`)."""

    def play(self, path: Path) -> bool: ...

    def stop_playback(self) -> None: ...


class Scheduler(Protocol):
    def call_later(self, delay_s: float, job: Callable[[], None]) -> Timer: ...


class Playback:
    """One call's prompt player: a sequence at a time; a new one (or `stop`) cuts the current one."""

    def __init__(self, leg: Speaker, book: PromptBook, scheduler: Scheduler) -> None:
        self.leg = leg
        self.book = book
        self.scheduler = scheduler
        self._queue: list[Clip] = []
        self._timer: Timer | None = None
        self._on_done: Callable[[], None] | None = None
        self._on_clip: Callable[[str], None] | None = None
        self._generation = 0  # bumped by play/stop: a callback of a replaced sequence goes nowhere
        self.current: Clip | None = None

    @property
    def playing(self) -> bool:
        return self._timer is not None

    def play(
        self,
        prompt_ids: Sequence[str],
        on_done: Callable[[], None],
        on_clip_end: Callable[[str], None] | None = None,
    ) -> None:
        """Play the prompts in order, then call `on_done` (also when none of them exists)."""
        self.stop()
        self._queue = self.book.clips(prompt_ids)
        self._on_done, self._on_clip = on_done, on_clip_end
        self._next()

    def stop(self) -> None:
        """Silence now; no callback follows."""
        self._generation += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.current is not None:
            self.leg.stop_playback()
        self._queue, self.current, self._on_done, self._on_clip = [], None, None, None

    def _next(self) -> None:
        if not self._queue:
            self.current, self._timer = None, None
            done, self._on_done, self._on_clip = self._on_done, None, None
            if done is not None:
                done()
            return
        clip = self._queue.pop(0)
        self.current = clip
        # A clip that cannot play (the call is going away, a broken file) takes no time.
        seconds = clip.seconds + CLIP_MARGIN_S if self.leg.play(clip.path) else 0.0
        self._timer = self.scheduler.call_later(seconds, self._clip_ended)

    def _clip_ended(self) -> None:
        generation = self._generation
        clip = self.current
        if clip is not None and self._on_clip is not None:
            self._on_clip(clip.prompt_id)
        if generation == self._generation:  # on_clip may have stopped or replaced this sequence
            self._next()
