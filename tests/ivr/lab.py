"""Helpers for the IVR tests: the pjsua2 test phone's driver, test prompts, and what a caller heard."""

from __future__ import annotations

import math
import queue
import struct
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Call
from recordings.models import Recording

if TYPE_CHECKING:
    from tests.ivr.conftest import Softswitch

PHONE = Path(__file__).with_name("phone.py")
RATE = 8000
CALLER = "13800138000"


class Phone:
    """A pjsua2 test phone in its own process (`tests/ivr/phone.py`), driven line by line."""

    def __init__(
        self,
        port: int,
        rtp_port: int,
        user: str,
        record: Path,
        *,
        refuse_transfer: bool = False,
        registrar: str = "",
        password: str = "",
    ) -> None:
        self.record = record
        self.log: list[str] = []
        argv = [sys.executable, str(PHONE), "--port", str(port), "--rtp-port", str(rtp_port)]
        argv += ["--user", user, "--record", str(record)]
        if refuse_transfer:
            argv.append("--refuse-transfer")
        if registrar:
            # `--password=…`: a generated password may begin with "-", which argparse would
            # otherwise take for an option.
            argv += ["--registrar", registrar, f"--password={password}"]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self.expect("ready")
        except BaseException:
            self.quit()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line.rstrip())
            self._lines.put(line.rstrip())

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        """The next output line starting with `prefix` (earlier other lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"phone never said {prefix!r}; it said: {self.log}")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return line

    def heard(self, timeout: float = 5.0) -> Path:
        """What this phone recorded of its call, once the call is over and the file is whole.

        The phone says `closed` when it lets go of its recorder, but pjmedia's conference bridge
        removes ports asynchronously (2.14 on): the WAV header gets its sizes a moment later, and a
        file read before that has a RIFF size of 0 ("not a WAVE file").
        """
        path = Path(self.expect("closed").split(" ", 1)[1])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with path.open("rb") as wav:
                head = wav.read(8)
            if len(head) == 8 and int.from_bytes(head[4:], "little") == path.stat().st_size - 8:
                return path
            time.sleep(0.05)
        raise AssertionError(f"{path} was never completed")

    def call(self, uri: str) -> None:
        self.send(f"call {uri}")
        self.expect("media")

    def quit(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


# Audio ----------------------------------------------------------------------------------------
def write_wav(path: Path, samples: Iterable[int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = list(samples)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(struct.pack(f"<{len(frames)}h", *frames))
    return path


def tone(seconds: float, hz: float, level: int = 8000) -> list[int]:
    return [int(level * math.sin(2 * math.pi * hz * n / RATE)) for n in range(int(seconds * RATE))]


def tone_prompts(folder: Path, prompt_ids: Iterable[str], seconds: float = 0.25) -> Path:
    """`audio/zh/<id>.wav` for every id: a short tone of its own pitch (fast tests, clear to tell apart)."""
    audio = folder / "audio" / "zh"
    for i, prompt_id in enumerate(sorted(set(prompt_ids))):
        write_wav(audio / f"{prompt_id}.wav", tone(seconds, 300 + 37 * i))
    return folder


def pitch(prompt_id: str) -> float:
    """The tone that stands for `prompt_id` in the tone prompts (see `tone_prompts`)."""
    from ivr import prompts

    ids = sorted(set(prompts.load_catalog(prompts.default_prompts_dir())))
    return 300.0 + 37 * ids.index(prompt_id)


def samples(path: Path) -> list[int]:
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1 and wav.getframerate() == RATE
        raw = wav.readframes(wav.getnframes())
    return list(struct.unpack(f"<{len(raw) // 2}h", raw))


def tone_share(path: Path, hz: float, window_s: float = 0.2) -> float:
    """The largest share of a window's energy at `hz` (Goertzel): about 1 for a clean tone."""
    pcm = samples(path)
    n = int(window_s * 8000)
    coeff = 2 * math.cos(2 * math.pi * hz / 8000)
    best = 0.0
    for start in range(0, len(pcm) - n, n // 2):
        window = pcm[start : start + n]
        total = sum(s * s for s in window)
        if total < n * 100**2:  # quieter than a whisper: not a voice
            continue
        s1 = s2 = 0.0
        for x in window:
            s1, s2 = x + coeff * s1 - s2, s1
        power = s1 * s1 + s2 * s2 - coeff * s1 * s2
        best = max(best, 2 * power / (n * total))
    return best


def envelope(pcm: list[int], frame: int = 160) -> list[float]:
    """Loudness per 20 ms: what survives G.711 and the network, unlike the exact waveform."""
    return [
        math.sqrt(sum(s * s for s in pcm[i : i + frame]) / frame)
        for i in range(0, len(pcm) - frame + 1, frame)
    ]


def _ncc(a: list[float], b: list[float]) -> float:
    n = min(len(a), len(b))
    if n < 10:
        return 0.0
    a, b = a[:n], b[:n]
    ma, mb = sum(a) / n, sum(b) / n
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    den = math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
    return num / den if den else 0.0


def best_match(heard: Path, prompt: Path, max_lag_s: float = 3.0) -> tuple[float, float]:
    """(best normalised cross-correlation of the loudness envelopes, at which lag in seconds)."""
    said, got = envelope(samples(prompt)), envelope(samples(heard))
    best = (0.0, 0.0)
    for lag in range(0, min(len(got), int(max_lag_s * 50))):
        score = _ncc(got[lag:], said)
        if score > best[0]:
            best = (score, lag / 50)
    return best


def speak_korean(text: str, out: Path) -> Path:
    """Korean text -> an 8 kHz mono telephone WAV (espeak-ng), the test model's language."""
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)], check=True)
    return out


class Baresip:
    """Debian's baresip as a third-party caller: headless, audio from and to WAV files, keys on stdin."""

    def __init__(
        self, folder: Path, sip_port: int, rtp_port: int, user: str, target: str, seconds: int
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # Its voice: silence as long as the call should last (the call ends when the file does).
        source = write_wav(folder / "voice.wav", [0] * (RATE * seconds))
        (folder / "config").write_text(
            "module_path /usr/lib/baresip/modules\n"
            "module stdio.so\nmodule g711.so\nmodule aufile.so\n"
            "module_app account.so\nmodule_app menu.so\n"
            # baresip 1.0's aufile is a source only: what it hears shows in its RTP statistics.
            f"audio_source aufile,{source}\n"
            "audio_srate 8000\naudio_channels 1\n"
            f"sip_listen 127.0.0.1:{sip_port}\nrtp_ports {rtp_port}-{rtp_port + 9}\n"
        )
        (folder / "accounts").write_text(f"<sip:{user}@127.0.0.1:{sip_port}>;regint=0\n")
        self.log = folder / "baresip.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["baresip", "-f", str(folder), "-t", str(seconds + 1), "-e", f"/dial {target}"],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def press(self, keys: str) -> None:
        """In a call, baresip's menu sends a typed digit as RFC 2833 DTMF."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(keys.encode())
        self.proc.stdin.flush()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def quit(self) -> int:
        """Hang up and exit now (baresip's `q` key), rather than at the end of its voice file."""
        self.press("q")
        return self.wait(timeout=5)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdin is not None:
                self.proc.stdin.close()


# Records and events -------------------------------------------------------------------------
def cdr(db: sessionmaker[Session], call_id: str) -> Call | None:
    with db() as session:
        return session.scalar(select(Call).where(Call.call_id == call_id))


def recordings(db: sessionmaker[Session], call_id: str) -> list[Recording]:
    with db() as session:
        return list(session.scalars(select(Recording).where(Recording.call_id == call_id)))


def event(
    softswitch: Softswitch, type_: str, timeout: float = 10.0, since: str = "", **match: Any
) -> dict[str, Any]:
    """The first `type_` event (after event id `since`) whose data has `match`; its data and `_id`."""

    def find() -> dict[str, Any] | None:
        for e in softswitch.events(type_):
            if (not since or _after(e.id, since)) and all(e.data.get(k) == v for k, v in match.items()):
                return {**e.data, "_id": e.id}
        return None

    found: dict[str, Any] | None = softswitch.wait_for(find, timeout=timeout)
    assert found, f"no {type_} {match}; events: {[(e.type, e.data) for e in softswitch.events()]}"
    return found


def _after(event_id: str | None, since: str) -> bool:
    ms, _, seq = (event_id or "0-0").partition("-")
    since_ms, _, since_seq = since.partition("-")
    return (int(ms), int(seq)) > (int(since_ms), int(since_seq))


def closed(db: sessionmaker[Session], softswitch: Softswitch, call_id: str) -> Call:
    row = softswitch.wait_for(lambda: (r := cdr(db, call_id)) is not None and r.ended_at is not None and r)
    assert row, f"CDR of {call_id} never closed: {cdr(db, call_id)}"
    return row  # type: ignore[no-any-return]


def info_flood_scenario(template: Path, out: Path, keys: str) -> Path:
    """A SIPp scenario sending each of `keys` as a SIP INFO, unrolled (CSeq 2, 3, ...).

    SIPp refuses scenario files over 64 KB: about 100 keys.
    """
    info = """  <send retrans="500">
    <![CDATA[

      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: "[caller]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Contact: <sip:[caller]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={key}
      Duration=100

    ]]>
  </send>
  <recv response="200"/>
"""
    infos = "".join(info.format(cseq=i + 2, key=key) for i, key in enumerate(keys))
    text = template.read_text().replace("@INFOS@", infos).replace("@BYE_CSEQ@", str(len(keys) + 2))
    out.write_text(text)
    return out
