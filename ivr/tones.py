"""Generated telephone tones: the beep before a voicemail, a short pause between spoken groups,
and the music a caller on hold hears (a soft pentatonic phrase, in a loop).

They are not speech, so the prompt catalog does not render them; a recorded `beep.wav` placed
among the prompts still wins (see `ivr.playback.PromptBook`).
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 8000
BEEP_HZ = 1000.0  # the usual answering-machine beep
BEEP_S = 0.4
PAUSE_S = 0.3


def _write(path: Path, samples: list[int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".partial-{path.name}")
    with wave.open(str(partial), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    partial.replace(path)
    return path


def beep(seconds: float = BEEP_S, hz: float = BEEP_HZ, level: int = 10000) -> list[int]:
    count = int(seconds * RATE)
    ramp = int(0.01 * RATE)  # 10 ms fade in and out: no click
    return [
        int(level * min(1.0, n / ramp, (count - n) / ramp) * math.sin(2 * math.pi * hz * n / RATE))
        for n in range(count)
    ]


# 宫商角徵羽 over an octave and back: calm, and nothing like a ring or busy tone.
HOLD_NOTES_HZ = (392.0, 440.0, 523.3, 587.3, 659.3, 587.3, 523.3, 440.0)
HOLD_NOTE_S = 0.6


def hold_music(level: int = 3000) -> list[int]:
    samples: list[int] = []
    for hz in HOLD_NOTES_HZ:
        samples += beep(HOLD_NOTE_S, hz, level)
        samples += [0] * int(0.1 * RATE)
    return samples


def ensure_tones(folder: Path) -> dict[str, Path]:
    """Write the tone files once (at worker start, before any call); prompt id -> path."""
    tones = {"beep": beep(), "pause": [0] * int(PAUSE_S * RATE), "hold_music": hold_music()}
    paths: dict[str, Path] = {}
    for prompt_id, samples in tones.items():
        path = folder / f"{prompt_id}.wav"
        if not path.exists():
            _write(path, samples)
        paths[prompt_id] = path
    return paths
