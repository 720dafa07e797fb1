"""A PC's headset as a pjsua2 conference port: `sounddevice` streams on one side, the call on the other.

Used by `hotline phone` (`ivr.sip.softphone`). PortAudio's threads and pjmedia's clock thread meet
only in two bounded queues of 20-ms frames, so neither ever waits for the other.
"""

from __future__ import annotations

import collections
from typing import Any

import pjsua2 as pj

RATE = 8000
FRAME_MS = 20
FRAME_BYTES = RATE * FRAME_MS // 1000 * 2  # 16-bit mono
# The headset buffers at most this much: more is latency nobody wants in a conversation.
MAX_BUFFERED_FRAMES = 10


class Headset:
    """The PC's microphone and speaker through sounddevice, 8 kHz 16-bit mono in 20-ms frames."""

    def __init__(self) -> None:
        import sounddevice  # only here: PortAudio is needed only for a real headset

        self.mic: collections.deque[bytes] = collections.deque(maxlen=MAX_BUFFERED_FRAMES)
        self.speaker: collections.deque[bytes] = collections.deque(maxlen=MAX_BUFFERED_FRAMES)
        frames = FRAME_BYTES // 2
        # Two streams, not one duplex stream: through ALSA's pulse plugin a duplex stream stalled
        # after a few callbacks here, and "high" latency put 1.5 s between speaker and microphone.
        common: dict[str, Any] = {
            "samplerate": RATE,
            "channels": 1,
            "dtype": "int16",
            "blocksize": frames,
            "latency": "low",
        }
        self.streams = [
            sounddevice.RawInputStream(callback=self._heard, **common),
            sounddevice.RawOutputStream(callback=self._speak, **common),
        ]

    def _heard(self, indata: Any, _frames: int, _time: Any, _status: Any) -> None:
        # PortAudio's threads: hand the microphone over, take what the caller said.
        self.mic.append(bytes(indata))

    def _speak(self, outdata: Any, _frames: int, _time: Any, _status: Any) -> None:
        data = self.speaker.popleft() if self.speaker else b""
        outdata[:] = data[: len(outdata)].ljust(len(outdata), b"\0")

    def start(self) -> None:
        """Open the sound devices (for a call only: running, they cost a few % of a core)."""
        self.mic.clear()
        self.speaker.clear()
        for stream in self.streams:
            if not stream.active:
                stream.start()

    def stop(self) -> None:
        for stream in self.streams:
            if stream.active:
                stream.stop()

    def close(self) -> None:
        self.stop()
        for stream in self.streams:
            stream.close()


class HeadsetPort(pj.AudioMediaPort):  # type: ignore[misc]
    """The headset as a conference port: called on pjmedia's clock thread every 20 ms."""

    def __init__(self, headset: Headset) -> None:
        super().__init__()
        self.headset = headset

    def onFrameRequested(self, frame: Any) -> None:
        data = self.headset.mic.popleft() if self.headset.mic else bytes(FRAME_BYTES)
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(data)
        frame.size = len(data)

    def onFrameReceived(self, frame: Any) -> None:
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
            self.headset.speaker.append(bytes(frame.buf))
