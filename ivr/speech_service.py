"""One speech recogniser per host, shared by every SIP worker: keywords and transcripts of recordings.

A vosk model costs hundreds of MB in each process that loads it (the Korean test model 530 MB;
16 workers would need 8 GB), so the model lives here once and the workers ask for spotting over
a unix socket (`run_dir/speech.sock`), one JSON object per line:

    -> {"op": "spot", "id": "c1-3", "path": "/…/<call>-caller.wav", "keywords": ["人工"], "timeout_s": 5}
    <- {"id": "c1-3", "word": "人工", "heard": "人工", "audio_s": 1.2, "cpu_s": 0.04}
    -> {"op": "cancel", "id": "c1-3"}

Free-form transcripts of whole legs (`{"op": "transcribe", ...}`) are streams: see
`ivr.speech_stream`. No audio crosses the socket: the caller's recording, which the worker
writes anyway, is read as it grows (pjsua's WAV writer flushes every 4 KB, 256 ms of 8 kHz
audio), from where it ends when the request arrives (a transcript: from its start). Each
spotting request runs on a pool thread (vosk decodes without the GIL).
Run it with `python -m ivr.speech_service` (settings from the environment, like every process).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

from hotline.settings import Settings, load_settings
from ivr.speech import KeywordSpotter, Speech
from ivr.speech_client import socket_path
from ivr.speech_stream import RecognizerPool, TranscribeRequest, transcribe

log = logging.getLogger(__name__)

WAV_HEADER = 44  # pjmedia's WAV writer: a canonical 44-byte header, then 16-bit samples
POLL_S = 0.05
CHUNK = 8000  # at most 0.5 s of 8 kHz audio per AcceptWaveform call
MAX_TIMEOUT_S = 60.0
# Free-form decoding costs about 0.15-0.25 CPU-s per audio-s: three streams per core keep up in
# real time with headroom for spotting. Above that a leg is refused (the recording stays).
STREAMS_PER_CORE = 3


class SpotRequest:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.id = str(raw["id"])
        self.path = Path(str(raw["path"]))
        self.keywords = [str(k) for k in raw.get("keywords", [])]
        self.timeout_s = min(MAX_TIMEOUT_S, max(0.1, float(raw.get("timeout_s", 5.0))))
        self.rate = int(raw.get("rate", 8000))
        self.cancelled = threading.Event()


def spot(model: Any, request: SpotRequest) -> dict[str, Any]:
    """Listen to the recording from its current end until a keyword, the timeout or a cancel."""
    answer: dict[str, Any] = {"id": request.id, "word": None, "heard": "", "audio_s": 0.0, "cpu_s": 0.0}
    try:
        f = request.path.open("rb")
    except OSError as exc:
        answer["error"] = f"cannot read {request.path}: {exc.strerror}"
        return answer
    with f:
        size = os.fstat(f.fileno()).st_size
        start = max(WAV_HEADER, size - (size - WAV_HEADER) % 2)
        f.seek(start)
        spotter = KeywordSpotter(model, request.keywords, request.rate)
        deadline = time.monotonic() + request.timeout_s
        fed = 0
        cpu = 0.0
        word = None
        while not request.cancelled.is_set():
            chunk = f.read(CHUNK)
            if len(chunk) % 2:
                f.seek(-1, os.SEEK_CUR)  # half a sample: read it with the next chunk
                chunk = chunk[:-1]
            if chunk:
                began = time.thread_time()
                word = spotter.feed(chunk)
                cpu += time.thread_time() - began
                fed += len(chunk)
                if word is not None:
                    break
            elif time.monotonic() >= deadline:
                break
            else:
                request.cancelled.wait(POLL_S)
        if word is None and not request.cancelled.is_set():
            began = time.thread_time()
            word = spotter.finish()
            cpu += time.thread_time() - began
        answer.update(word=word, heard=spotter.heard, audio_s=round(fed / (2 * request.rate), 3))
        answer["cpu_s"] = round(cpu, 4)
    return answer


class _Handler(socketserver.StreamRequestHandler):
    server: SpeechServer

    def handle(self) -> None:
        lock = threading.Lock()
        mine: dict[str, SpotRequest | TranscribeRequest] = {}

        def reply(answer: dict[str, Any]) -> None:
            if "segment" not in answer and "partial" not in answer:  # a stream's come before its end
                mine.pop(answer["id"], None)
            with lock:
                try:
                    self.wfile.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
                    self.wfile.flush()
                except (OSError, ValueError):  # ValueError: the handler has closed the file
                    pass  # the worker went away; its calls are gone too

        for line in self.rfile:
            try:
                raw = json.loads(line)
                if raw.get("op") == "cancel":
                    request = mine.get(str(raw.get("id")))
                    if request is not None:
                        request.cancelled.set()
                    continue
                if raw.get("op") == "transcribe":
                    stream = TranscribeRequest(raw)
                    mine[stream.id] = stream
                    self.server.stream(stream, reply)
                    continue
                request = SpotRequest(raw)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("bad speech request %r: %s", line[:200], exc)
                continue
            mine[request.id] = request
            self.server.submit(request, reply)
        for request in list(mine.values()):  # connection closed: stop listening for that worker
            request.cancelled.set()


class SpeechServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, speech: Speech, max_streams: int, max_transcripts: int = 0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # left by a killed predecessor
        super().__init__(str(path), _Handler)
        self.speech = speech
        self.pool = ThreadPoolExecutor(max_streams, thread_name_prefix="spot")
        self.recognizers = RecognizerPool(speech.model, speech.sample_rate)
        # Streams last as long as calls: their own threads, so spotting never waits behind them.
        self.max_transcripts = max_transcripts or STREAMS_PER_CORE * (os.cpu_count() or 1)
        self.transcripts = 0
        self.served = 0
        self._count = threading.Lock()

    def stream(self, request: TranscribeRequest, reply: Any) -> None:
        with self._count:
            full = self.transcripts >= self.max_transcripts
            if not full:
                self.transcripts += 1
        if full:
            log.warning(
                "transcript of %s refused: %d streams running", request.path.name, self.max_transcripts
            )
            reply({"id": request.id, "done": True, "error": "busy"})
            return

        def work() -> None:
            answer: dict[str, Any] = {"id": request.id, "done": True, "error": "internal"}
            try:
                answer = transcribe(self.recognizers, request, reply)
                log.info(
                    "transcript of %s: %d segment(s), %.1fs audio, %.2f CPU-s",
                    request.path.name,
                    answer.get("segments", 0),
                    answer.get("audio_s", 0.0),
                    answer.get("cpu_s", 0.0),
                )
            except Exception:
                log.exception("transcribing %s failed", request.id)
            finally:
                with self._count:
                    self.transcripts -= 1
                    self.served += 1
                reply(answer)

        threading.Thread(target=work, name=f"transcribe-{request.id}", daemon=True).start()

    def submit(self, request: SpotRequest, reply: Any) -> None:
        def work() -> None:
            try:
                reply(spot(self.speech.model, request))
            except Exception:
                log.exception("spotting %s failed", request.id)
                reply({"id": request.id, "word": None, "heard": "", "error": "internal"})
            finally:
                with self._count:
                    self.served += 1

        self.pool.submit(work)


def run(settings: Settings, max_streams: int | None = None) -> int:
    """Serve until SIGTERM/SIGINT; 2 when no model is configured, 1 when it cannot load."""
    if settings.vosk_model is None:
        log.error("speech service: no vosk_model configured")
        return 2
    from recordings.transcribe import SpeechError

    started = time.monotonic()
    try:
        speech = Speech(settings.vosk_model)
    except SpeechError as exc:
        log.error("speech service: %s", exc)
        return 1
    path = socket_path(settings)
    server = SpeechServer(
        path, speech, max_streams or 4 * (os.cpu_count() or 1), max_transcripts=settings.speech_live_streams
    )
    loaded_s = time.monotonic() - started
    log.info("speech service: model %s loaded in %.1fs; on %s", settings.vosk_model, loaded_s, path)

    def stop(signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        server.pool.shutdown(wait=False, cancel_futures=True)
        path.unlink(missing_ok=True)
    log.info("speech service stopped after %d requests", server.served)
    return 0


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(run(load_settings()))


def ping(path: Path, timeout_s: float = 0.5) -> bool:
    """Whether a speech service listens on `path`."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(path))
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
