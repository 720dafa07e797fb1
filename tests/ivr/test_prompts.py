"""Voice prompts render to 8 kHz telephone audio, numbers read digit by digit, recordings kept."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import pytest

from ivr import prompts

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    (tmp_path / "catalog.toml").write_text(
        '[prompts]\ngreeting = "您好，这里是12345热线。"\ngoodbye = "再见。"\n', encoding="utf-8"
    )
    return tmp_path


def test_numbers_are_read_digit_by_digit_with_yao() -> None:
    assert prompts.speakable("拨打12345") == "拨打幺二三四五"
    assert prompts.to_pinyin("您好，12345。") == "nin2 hao3, yao1 er4 san1 si4 wu3."


def test_render_writes_8khz_mono_audio_for_every_prompt_and_digit(prompts_dir: Path) -> None:
    report = prompts.render(prompts_dir)
    assert set(report.rendered) == {"greeting", "goodbye", *prompts.DIGIT_PROMPTS}
    with wave.open(str(prompts_dir / "audio" / "zh" / "greeting.wav")) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        seconds = wav.getnframes() / wav.getframerate()
    assert 1.0 < seconds < 10.0  # speech, not an empty file


def test_only_missing_or_changed_prompts_are_rendered_again(prompts_dir: Path) -> None:
    prompts.render(prompts_dir)
    assert prompts.render(prompts_dir).rendered == []
    (prompts_dir / "catalog.toml").write_text(
        '[prompts]\ngreeting = "您好，这里是六盘水市12345热线。"\ngoodbye = "再见。"\n', encoding="utf-8"
    )
    (prompts_dir / "audio" / "zh" / "goodbye.wav").unlink()
    assert sorted(prompts.render(prompts_dir).rendered) == ["goodbye", "greeting"]


def test_a_recorded_replacement_is_never_overwritten(prompts_dir: Path) -> None:
    prompts.render(prompts_dir)
    greeting = prompts_dir / "audio" / "zh" / "greeting.wav"
    recorded = greeting.read_bytes()[:-800] + bytes(800)  # a different file in the same format
    greeting.write_bytes(recorded)
    report = prompts.render(prompts_dir, force=True)
    assert "greeting" in report.recorded and "greeting" not in report.rendered
    assert greeting.read_bytes() == recorded


def test_the_shipped_catalog_loads_and_has_the_recording_notice() -> None:
    catalog = prompts.load_catalog(REPO / "voice-prompts")
    assert "录音" in catalog["recording_notice"]
    assert catalog["digit_1"] == "幺"


def test_a_broken_catalog_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "catalog.toml").write_text("[prompts]\ngreeting = \n")
    with pytest.raises(prompts.PromptError, match="catalog.toml"):
        prompts.load_catalog(tmp_path)
