"""Generated telephone tones: the beep before a voicemail and a short pause between spoken groups.

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


def ensure_tones(folder: Path) -> dict[str, Path]:
    """Write the tone files once (at worker start, before any call); prompt id -> path."""
    tones = {"beep": beep(), "pause": [0] * int(PAUSE_S * RATE)}
    paths: dict[str, Path] = {}
    for prompt_id, samples in tones.items():
        path = folder / f"{prompt_id}.wav"
        if not path.exists():
            _write(path, samples)
        paths[prompt_id] = path
    return paths
