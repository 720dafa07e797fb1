"""Speech during a call: spotting the current menu node's keywords in the caller's audio.

Runs off the pjsua2 thread: the worker hands 16-bit PCM chunks in, and gets a keyword (or
None) back. One grammar per menu node (its keywords plus the unknown-word token) is far more
accurate and cheaper than free-form decoding; recognizers are built per utterance from the one
shared model. A recognizer can hold an utterance open for seconds after digital silence, so the
caller's turn also ends on our own timeout (`finish`).
"""

from __future__ import annotations

from collections.abc import Sequence
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


class Speech:
    """The process's speech engine: None-safe when no model is configured (DTMF still works)."""

    def __init__(self, model_path: Path | None, sample_rate: int = 8000) -> None:
        self.sample_rate = sample_rate
        self.model = load_model(model_path) if model_path is not None else None

    @property
    def enabled(self) -> bool:
        return self.model is not None

    def spotter(self, keywords: Sequence[str]) -> KeywordSpotter | None:
        if self.model is None or not keywords:
            return None
        return KeywordSpotter(self.model, keywords, self.sample_rate)
