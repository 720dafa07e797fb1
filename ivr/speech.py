"""Speech during a call: spotting menu keywords, and the free-text transcript of each leg.

Runs off the pjsua2 thread: the worker hands 16-bit PCM chunks in, and gets a keyword (or
None) back. One grammar per menu node (its keywords plus the unknown-word token) is far more
accurate and cheaper than free-form decoding; recognizers are built per utterance from the one
shared model. A recognizer can hold an utterance open for seconds after digital silence, so the
caller's turn also ends on our own timeout (`finish`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recordings.transcribe import load_model, recognizer, result_text

# Models name their unknown-word token differently (small-cn: [unk]; others <UNK>). Both go in
# the grammar: the one a model does not know is dropped, and without the right one every sound
# would be forced onto some keyword.
UNKNOWN_TOKENS = ("[unk]", "<UNK>")


class KeywordSpotter:
    """Feed one utterance of caller audio; learn which keyword (if any) was said."""

    def __init__(self, model: Any, keywords: Sequence[str], sample_rate: int = 8000) -> None:
        self.keywords = [k for k in dict.fromkeys(keywords) if k.strip()]
        self._rec = recognizer(model, sample_rate, [*self.keywords, *UNKNOWN_TOKENS])
        self.heard = ""

    def feed(self, pcm: bytes) -> str | None:
        """A keyword as soon as an utterance ends with one; None while listening."""
        if self._rec.AcceptWaveform(pcm):
            return self._match(result_text(self._rec.Result()))
        return None

    def finish(self) -> str | None:
        """End the turn (our timeout): the keyword of whatever was heard so far."""
        return self._match(result_text(self._rec.FinalResult()))

    def _match(self, text: str) -> str | None:
        self.heard = text
        for word in text.split():
            if word in self.keywords:
                return word
        return None


@dataclass(frozen=True)
class Segment:
    """One final utterance: its text and where it lies in the stream (seconds from its start)."""

    text: str
    start_s: float
    end_s: float


class Transcriber:
    """Free-form decoding of one growing stream, an utterance at a time (智能填单).

    One recogniser for the whole stream: a new one per utterance costs three to four times the
    CPU and stalls on its first chunks. Vosk's word times count from the recogniser's creation,
    so they are taken relative to the audio it had heard before this stream (`base_s`).
    """

    # Digital silence after speech can hold an utterance open for seconds: a partial that has not
    # changed for this much audio is ended by us.
    STALL_S = 1.5

    def __init__(self, rec: Any, sample_rate: int = 8000, base_s: float = 0.0) -> None:
        self._rec = rec
        self._rec.SetWords(True)
        self.rate = sample_rate
        self.base_s = base_s
        self.fed_s = 0.0
        self._partial = ""
        self._partial_since = 0.0

    def feed(self, pcm: bytes) -> Segment | None:
        self.fed_s += len(pcm) / (2 * self.rate)
        if self._rec.AcceptWaveform(pcm):
            return self._segment(self._rec.Result())
        partial = str(json.loads(self._rec.PartialResult()).get("partial", ""))
        if partial != self._partial:
            self._partial, self._partial_since = partial, self.fed_s
        elif partial and self.fed_s - self._partial_since >= self.STALL_S:
            return self.finish()
        return None

    @property
    def partial(self) -> str:
        """What the utterance in progress sounds like so far (it may still change)."""
        return " ".join(t for t in self._partial.split() if t not in UNKNOWN_TOKENS)

    def release(self) -> tuple[Any, float]:
        """The recogniser, for the next stream, with all the audio it has heard (its time origin)."""
        return self._rec, self.base_s + self.fed_s

    def finish(self) -> Segment | None:
        """End the current utterance (a stall, or the end of the stream)."""
        return self._segment(self._rec.FinalResult())

    def _segment(self, raw: str) -> Segment | None:
        self._partial, self._partial_since = "", self.fed_s
        result = json.loads(raw)
        text = str(result.get("text", "")).strip()
        words = [w for w in result.get("result", []) if w.get("word") not in UNKNOWN_TOKENS]
        text = " ".join(t for t in text.split() if t not in UNKNOWN_TOKENS)
        if not text:
            return None
        if words:
            start, end = float(words[0]["start"]) - self.base_s, float(words[-1]["end"]) - self.base_s
        else:
            start = end = self.fed_s
        return Segment(text, round(max(0.0, start), 2), round(max(0.0, end), 2))


class Speech:
    """The process's speech engine: None-safe when no model is configured (DTMF still works)."""

    def __init__(self, model_path: Path | None, sample_rate: int = 8000) -> None:
        self.sample_rate = sample_rate
        self.model = load_model(model_path) if model_path is not None else None

    @property
    def enabled(self) -> bool:
        return self.model is not None

    def transcriber(self) -> Transcriber | None:
        if self.model is None:
            return None
        return Transcriber(recognizer(self.model, self.sample_rate), self.sample_rate)

    def spotter(self, keywords: Sequence[str]) -> KeywordSpotter | None:
        if self.model is None or not keywords:
            return None
        return KeywordSpotter(self.model, keywords, self.sample_rate)
