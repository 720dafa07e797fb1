"""Speech to text with vosk: loading a model once per process, and transcribing a WAV file.

No model is bundled and none can be downloaded at run time: the operator installs one (for
Mandarin `vosk-model-small-cn-0.22`) and sets `vosk_model`. `vosk.Model(lang=...)` is never
called: it tries to download and exits the process when it cannot.
"""

from __future__ import annotations

import json
import threading
import wave
from pathlib import Path
from typing import Any

import vosk

# vosk prints Kaldi's log lines to stderr; -2 silences warnings too (-1 does not).
vosk.SetLogLevel(-2)

_models: dict[Path, Any] = {}
_lock = threading.Lock()
CHUNK_FRAMES = 4000  # half a second of 8 kHz audio per AcceptWaveform call


class SpeechError(Exception):
    """No usable model, or audio the recognizer cannot take."""


def load_model(path: Path) -> Any:
    """The vosk model at `path`, loaded once per process and shared (recognizers are cheap)."""
    resolved = path.resolve()
    with _lock:
        if resolved not in _models:
            if not (resolved / "am").is_dir() and not (resolved / "final.mdl").exists():
                raise SpeechError(f"{path} is not a vosk model folder (no am/ inside)")
            try:
                _models[resolved] = vosk.Model(str(resolved))
            except Exception as exc:  # vosk raises a bare Exception when Kaldi fails
                raise SpeechError(f"cannot load the vosk model at {path}: {exc}") from exc
        return _models[resolved]


def recognizer(model: Any, sample_rate: int, grammar: list[str] | None = None) -> Any:
    """A recognizer at the audio's real rate (a wrong rate gives garbage and no error)."""
    if grammar is None:
        return vosk.KaldiRecognizer(model, float(sample_rate))
    return vosk.KaldiRecognizer(model, float(sample_rate), json.dumps(grammar, ensure_ascii=False))


def result_text(raw: str) -> str:
    return str(json.loads(raw).get("text", "")).strip()


def transcribe_wav(model: Any, path: Path) -> str:
    """Free-form transcript of a mono 16-bit WAV file (a voicemail, a call leg)."""
    try:
        wav = wave.open(str(path), "rb")
    except (OSError, EOFError, wave.Error) as exc:
        raise SpeechError(f"{path}: not a readable WAV file ({exc})") from exc
    with wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise SpeechError(f"{path}: needs mono 16-bit audio")
        rec = recognizer(model, wav.getframerate())
        parts: list[str] = []
        while chunk := wav.readframes(CHUNK_FRAMES):
            if rec.AcceptWaveform(chunk):
                parts.append(result_text(rec.Result()))
        parts.append(result_text(rec.FinalResult()))
    return " ".join(p for p in parts if p)
