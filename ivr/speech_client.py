"""A SIP worker's link to the host's speech service (`ivr.speech_service`): keywords and transcripts.

Called on the pjsua2 thread, so nothing here waits: requests go to a queue that a thread of
its own writes to the socket, and answers come back through `post` (to the pjsua2 thread). When
the service is not running, every request is answered at once with no word: the menu then
simply goes on by keys, as it does without a model. The worker never loads a model itself.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hotline.settings import Settings

log = logging.getLogger(__name__)

Post = Callable[[Callable[[], None]], None]
OnResult = Callable[[str | None, str], None]  # (keyword or None, what was heard)
OnSegment = Callable[[dict[str, Any]], None]  # {"text", "start_s", "end_s"} of one utterance
OnDone = Callable[[dict[str, Any]], None]  # the stream's last word: audio_s, cpu_s, error
OnPartial = Callable[[str], None]  # the utterance in progress, so far


class _Stream:
    def __init__(self, on_segment: OnSegment, on_done: OnDone, on_partial: OnPartial | None) -> None:
        self.on_segment = on_segment
        self.on_done = on_done
        self.on_partial = on_partial


RETRY_S = 2.0
SOCKET_NAME = "speech.sock"


def socket_path(settings: Settings) -> Path:
    """Where the host's speech service listens (workers and service derive it the same way)."""
    return (settings.run_dir / SOCKET_NAME).resolve()


class SpeechClient:
    def __init__(self, path: Path, post: Post, name: str = "speech") -> None:
        self.path = path
        self._post = post
        self._outbox: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._waiting: dict[str, OnResult] = {}
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._prefix = f"{name}-{id(self):x}"
        self._sock: socket.socket | None = None
        self._down_until = 0.0
        self._warned = False
        self._writer = threading.Thread(target=self._write_loop, name=f"{name}-out", daemon=True)
        self._writer.start()

    # pjsua2 thread --------------------------------------------------------------------------
    def spot(self, recording: Path, keywords: Sequence[str], timeout_s: float, on_result: OnResult) -> str:
        """Ask for the first of `keywords` said from now on; returns the request id (to cancel)."""
        request_id = f"{self._prefix}-{next(self._ids)}"
        with self._lock:
            self._waiting[request_id] = on_result
        self._outbox.put(
            {
                "op": "spot",
                "id": request_id,
                "path": str(recording),
                "keywords": list(keywords),
                "timeout_s": timeout_s,
            }
        )
        return request_id

    def transcribe(
        self, recording: Path, on_segment: OnSegment, on_done: OnDone, on_partial: OnPartial | None = None
    ) -> str:
        """Stream the free-form transcript of a recording being written, from its start.

        `on_segment` gets each final utterance as it is decoded; `on_done` once, after `finish`
        (or at once when the service is not there); `on_partial`, if given, the utterance in
        progress now and then. All are called on the pjsua2 thread.
        """
        request_id = f"{self._prefix}-{next(self._ids)}"
        with self._lock:
            self._streams[request_id] = _Stream(on_segment, on_done, on_partial)
        self._outbox.put(
            {
                "op": "transcribe",
                "id": request_id,
                "path": str(recording),
                "partials": on_partial is not None,
            }
        )
        return request_id

    def finish(self, request_id: str) -> None:
        """The leg hung up: the service decodes what is left of the file, then says done."""
        with self._lock:
            known = request_id in self._streams
        if known:
            self._outbox.put({"op": "cancel", "id": request_id})

    def cancel(self, request_id: str) -> None:
        with self._lock:
            known = self._waiting.pop(request_id, None) is not None
        if known:
            self._outbox.put({"op": "cancel", "id": request_id})

    def close(self) -> None:
        self._outbox.put(None)
        self._writer.join(timeout=2)
        self._disconnect()

    # Writer and reader threads --------------------------------------------------------------
    def _write_loop(self) -> None:
        while (message := self._outbox.get()) is not None:
            sock = self._connected()
            if sock is None:
                self._unanswered(message)
                continue
            try:
                sock.sendall(json.dumps(message, ensure_ascii=False).encode() + b"\n")
            except OSError as exc:
                log.warning("speech service connection lost: %s", exc)
                self._disconnect()
                self._unanswered(message)

    def _unanswered(self, message: dict[str, Any]) -> None:
        if message["op"] == "spot":
            self._answer(message["id"], None, "")
        elif message["op"] == "transcribe":
            self._done({"id": message["id"], "error": "no speech service"})

    def _connected(self) -> socket.socket | None:
        if self._sock is not None:
            return self._sock
        if time.monotonic() < self._down_until:
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.path))
        except OSError as exc:
            sock.close()
            self._down_until = time.monotonic() + RETRY_S
            if not self._warned:
                log.warning("no speech service on %s (%s): keys only until it is up", self.path, exc.strerror)
                self._warned = True
            return None
        if self._warned:
            log.info("speech service on %s reachable", self.path)
            self._warned = False
        self._sock = sock
        threading.Thread(target=self._read_loop, args=(sock,), name="speech-in", daemon=True).start()
        return sock

    def _read_loop(self, sock: socket.socket) -> None:
        with sock.makefile("rb") as answers:
            for line in answers:
                try:
                    answer = json.loads(line)
                except ValueError:
                    continue
                if answer.get("error"):
                    log.warning("speech request %s: %s", answer.get("id"), answer["error"])
                if "segment" in answer:
                    self._segment(str(answer.get("id")), answer["segment"])
                elif "partial" in answer:
                    self._partial(str(answer.get("id")), str(answer["partial"]))
                elif answer.get("done"):
                    self._done(answer)
                else:
                    self._answer(str(answer.get("id")), answer.get("word"), str(answer.get("heard", "")))
        # The service went away: whatever was waiting will not be answered by it.
        self._disconnect(sock)
        with self._lock:
            lost, streams = list(self._waiting), list(self._streams)
        for request_id in lost:
            self._answer(request_id, None, "")
        for request_id in streams:
            self._done({"id": request_id, "error": "speech service lost"})

    def _disconnect(self, sock: socket.socket | None = None) -> None:
        current = self._sock
        if current is not None and (sock is None or sock is current):
            self._sock = None
            try:
                current.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            current.close()

    def _answer(self, request_id: str, word: str | None, heard: str) -> None:
        with self._lock:
            on_result = self._waiting.pop(request_id, None)
        if on_result is not None:
            self._post(lambda: on_result(word, heard))

    def _segment(self, request_id: str, segment: dict[str, Any]) -> None:
        with self._lock:
            stream = self._streams.get(request_id)
        if stream is not None:
            self._post(lambda: stream.on_segment(segment))

    def _partial(self, request_id: str, text: str) -> None:
        with self._lock:
            stream = self._streams.get(request_id)
        on_partial = stream.on_partial if stream is not None else None
        if on_partial is not None:
            self._post(lambda: on_partial(text))

    def _done(self, answer: dict[str, Any]) -> None:
        with self._lock:
            stream = self._streams.pop(str(answer.get("id")), None)
        if stream is not None:
            self._post(lambda: stream.on_done(answer))
