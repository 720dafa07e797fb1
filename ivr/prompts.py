"""Voice prompts: the catalog (id -> Chinese text) and rendering it to 8 kHz telephone audio.

Debian 12's espeak-ng reads Mandarin characters as pinyin with English tone numbers, so text is
first turned into pinyin with tone numbers (pypinyin, TONE3) and spoken with the
`cmn-latn-pinyin` voice, then converted by sox to 8 kHz mono 16-bit (what the phone network
carries). Digits are read one by one with 1 as 幺, as hotlines read numbers aloud.

A file in `audio/<lang>/` that this renderer did not write (its checksum is not the one recorded
in `rendered.json`) is a recorded replacement and is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

# Bump when the rendering pipeline changes, so rendered prompts are re-rendered once.
RENDERER_VERSION = "espeak-ng cmn-latn-pinyin + pypinyin TONE3 / sox 8k mono s16 / v1"
SAMPLE_RATE = 8000
DIGIT_WORDS = dict(zip("0123456789", "零幺二三四五六七八九", strict=True))
# Digit clips every catalog gets, for numbers spoken at run time (ticket numbers, positions).
DIGIT_PROMPTS = {f"digit_{d}": word for d, word in DIGIT_WORDS.items()}
# Chinese punctuation becomes a pause espeak understands.
_PAUSES = str.maketrans({"，": ", ", "、": ", ", "；": ", ", "：": ", ", "。": ". ", "！": ". ", "？": ". "})


class PromptError(Exception):
    """The catalog is unreadable or a prompt cannot be rendered."""


# voice-prompts/ is a data folder beside the packages (DESIGN.md); an installed wheel does not
# carry it, so a deployment sets `prompts_dir`.
DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "voice-prompts"
DEFAULT_LANG = "zh"


def default_prompts_dir() -> Path:
    """`voice-prompts/` beside the packages (a source checkout or editable install)."""
    return DEFAULT_ROOT


def find(prompt_id: str, *, lang: str = DEFAULT_LANG, root: Path | None = None) -> Path | None:
    """The WAV file for `prompt_id`, or None when it has not been rendered or recorded yet."""
    path = (root or DEFAULT_ROOT) / "audio" / lang / f"{prompt_id}.wav"
    return path if path.is_file() else None


def load_catalog(prompts_dir: Path) -> dict[str, str]:
    """Prompt id -> text, from `catalog.toml`, plus the built-in digit clips."""
    path = prompts_dir / "catalog.toml"
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PromptError(f"{path}: {exc}") from exc
    prompts = table.get("prompts", {})
    bad = [key for key, value in prompts.items() if not isinstance(value, str) or not value.strip()]
    if bad:
        raise PromptError(f"{path}: prompts without text: {', '.join(bad)}")
    return {**DIGIT_PROMPTS, **prompts}


def speakable(text: str) -> str:
    """Digits read one by one (1 as 幺): 12345 -> 幺二三四五."""
    return re.sub(r"\d", lambda m: DIGIT_WORDS[m.group(0)], text)


def to_pinyin(text: str) -> str:
    """Chinese text -> pinyin with tone numbers for espeak's cmn-latn-pinyin voice."""
    # Imported here: its dictionaries cost ~56 MB, and SIP workers only look prompts up.
    from pypinyin import Style, lazy_pinyin

    syllables = lazy_pinyin(
        speakable(text).translate(_PAUSES), style=Style.TONE3, neutral_tone_with_five=True
    )
    return re.sub(r"\s+([,.])", r"\1", " ".join(s.strip() for s in syllables if s.strip()))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _text_key(text: str) -> str:
    return hashlib.sha256(f"{RENDERER_VERSION}\n{text}".encode()).hexdigest()


def render_one(text: str, out: Path, espeak: str = "espeak-ng", sox: str = "sox") -> None:
    """Render `text` to `out` as 8 kHz mono 16-bit WAV (written to a temp name, then renamed)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            [espeak, "-v", "cmn-latn-pinyin", "-s", "150", "-w", str(raw), to_pinyin(text)],
            check=True,
            capture_output=True,
        )
        partial = out.with_name(f".partial-{out.name}")
        subprocess.run(
            [
                sox,
                str(raw),
                "-r",
                str(SAMPLE_RATE),
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
                str(partial),
            ],
            check=True,
            capture_output=True,
        )
        partial.replace(out)


@dataclass
class RenderReport:
    rendered: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    removed_from_catalog: list[str] = field(default_factory=list)


def render(prompts_dir: Path, lang: str = "zh", *, force: bool = False) -> RenderReport:
    """Render missing or changed prompts; never touch a recorded replacement."""
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak is None or sox is None:
        raise PromptError("rendering needs espeak-ng and sox (Debian packages espeak-ng, sox)")
    catalog = load_catalog(prompts_dir)
    audio = prompts_dir / "audio" / lang
    audio.mkdir(parents=True, exist_ok=True)
    state_path = audio / "rendered.json"
    state: dict[str, dict[str, str]] = json.loads(state_path.read_text()) if state_path.exists() else {}
    report = RenderReport()
    for prompt_id, text in sorted(catalog.items()):
        out = audio / f"{prompt_id}.wav"
        ours = state.get(prompt_id)
        if out.exists() and (ours is None or ours.get("wav_sha256") != _sha256(out)):
            report.recorded.append(prompt_id)  # a person recorded this one: keep it
            continue
        if out.exists() and ours and ours.get("text_sha256") == _text_key(text) and not force:
            report.unchanged.append(prompt_id)
            continue
        try:
            render_one(text, out, espeak, sox)
        except subprocess.CalledProcessError as exc:
            raise PromptError(f"prompt {prompt_id}: {exc.stderr.decode(errors='replace').strip()}") from exc
        state[prompt_id] = {"text_sha256": _text_key(text), "wav_sha256": _sha256(out)}
        report.rendered.append(prompt_id)
    report.removed_from_catalog = sorted(set(state) - set(catalog))
    tmp = state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True, ensure_ascii=False))
    tmp.replace(state_path)
    return report
