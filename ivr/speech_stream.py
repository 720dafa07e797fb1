"""The speech service's free-form transcription of one growing call-leg recording (智能填单).

A request names a recording the worker is writing; its own thread decodes the file from the
start as it grows and sends each final utterance back as soon as vosk has it:

    -> {"op": "transcribe", "id": "w1-7", "path": "/…/<call>-caller.wav"}
    <- {"id": "w1-7", "partial": "…"}          (with "partials": true; at most every 0.8 s)
    <- {"id": "w1-7", "segment": {"text": "…", "start_s": 3.1, "end_s": 5.4}}
    -> {"op": "cancel", "id": "w1-7"}          (the leg hung up)
    <- {"id": "w1-7", "done": true, "audio_s": 41.2, "cpu_s": 6.3}

A cancel does not drop the end of the call: the stream reads on until the recorder has closed
the file (its header then states the length) or it stops growing, ends the last utterance and
only then says `done`. Recognisers are reused from a small pool: a fresh one stalls and costs
several times the CPU on its first utterance.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ivr.speech import Segment, Transcriber
from recordings.transcribe import recognizer

WAV_HEADER = 44
POLL_S = 0.1
CHUNK = 4000  # 0.25 s of 8 kHz audio: the WAV writer's flush size, so segments come promptly
DRAIN_IDLE_S = 1.0  # after a cancel: the file has stopped growing, the recorder is gone
MAX_DRAIN_S = 4.0
MAX_STREAM_S = 4 * 3600.0  # no call lasts this long; a stream that does is a leak
PARTIAL_EVERY_S = 0.8  # a live line on the desk, without an event per 256 ms of audio

Send = Callable[[dict[str, Any]], None]


class TranscribeRequest:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.id = str(raw["id"])
        self.path = Path(str(raw["path"]))
        self.rate = int(raw.get("rate", 8000))
        self.partials = bool(raw.get("partials", False))
        self.cancelled = threading.Event()


class RecognizerPool:
    """Warm free-form recognisers, each with the audio time it has heard (its word-time origin)."""

    def __init__(self, model: Any, rate: int = 8000) -> None:
        self.model = model
        self.rate = rate
        self._free: list[tuple[Any, float]] = []
        self._lock = threading.Lock()

    def take(self) -> Transcriber:
        with self._lock:
            rec, heard_s = self._free.pop() if self._free else (recognizer(self.model, self.rate), 0.0)
        return Transcriber(rec, self.rate, base_s=heard_s)

    def give_back(self, transcriber: Transcriber) -> None:
        with self._lock:
            self._free.append(transcriber.release())


def _closed(f: Any, length: int) -> bool:
    """Whether the recorder has finished the file: its header then holds the true sizes."""
    f.seek(0)
    header = f.read(WAV_HEADER)
    if len(header) < WAV_HEADER or header[:4] != b"RIFF":
        return False
    riff, data = struct.unpack_from("<I", header, 4)[0], struct.unpack_from("<I", header, 40)[0]
    return bool(riff == length - 8 and data == length - WAV_HEADER)


def transcribe(pool: RecognizerPool, request: TranscribeRequest, send: Send) -> dict[str, Any]:
    """Decode `request.path` from its start until cancelled (and drained); the `done` answer."""
    done: dict[str, Any] = {"id": request.id, "done": True, "audio_s": 0.0, "cpu_s": 0.0, "segments": 0}
    try:
        f = request.path.open("rb")
    except OSError as exc:
        done["error"] = f"cannot read {request.path}: {exc.strerror}"
        return done
    transcriber = pool.take()
    cpu = 0.0
    segments = 0
    pos = WAV_HEADER
    began = time.monotonic()
    drain_since: float | None = None
    last_growth = time.monotonic()
    said, said_at = "", 0.0  # the partial sent last, and when

    def emit(segment: Segment | None) -> None:
        nonlocal segments
        if segment is not None:
            segments += 1
            send({"id": request.id, "segment": dataclasses.asdict(segment)})

    with f:
        while True:
            f.seek(pos)
            chunk = f.read(CHUNK)
            chunk = chunk[: len(chunk) - len(chunk) % 2]  # half a sample waits for the next read
            if chunk:
                pos += len(chunk)
                last_growth = time.monotonic()
                started = time.thread_time()
                segment = transcriber.feed(chunk)
                cpu += time.thread_time() - started
                emit(segment)
                if segment is not None:
                    said = ""
                elif request.partials and transcriber.partial not in ("", said):
                    if time.monotonic() - said_at >= PARTIAL_EVERY_S:
                        said, said_at = transcriber.partial, time.monotonic()
                        send({"id": request.id, "partial": said})
                continue
            now = time.monotonic()
            if request.cancelled.is_set():
                drain_since = drain_since or now
                idle = now - last_growth >= DRAIN_IDLE_S
                if _closed(f, os.fstat(f.fileno()).st_size) or idle or now - drain_since >= MAX_DRAIN_S:
                    break
            elif now - began >= MAX_STREAM_S:
                done["error"] = "stream too long"
                break
            time.sleep(POLL_S)
        started = time.thread_time()
        emit(transcriber.finish())
        cpu += time.thread_time() - started
    pool.give_back(transcriber)
    done.update(audio_s=round(transcriber.fed_s, 2), cpu_s=round(cpu, 3), segments=segments)
    return done
