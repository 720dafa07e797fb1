"""Administration of voice prompts: the catalog's texts, the current audio, recorded replacements.

The desk never imports `ivr`: it reads `voice-prompts/` (catalog.toml and audio/<lang>/<id>.wav)
as the data folder it is. An uploaded recording must be a WAV file; telephone audio (8 kHz,
mono, 16-bit PCM) is kept as it is, anything else is converted by sox (the Debian package that
already renders the prompts). The file it replaces is moved to `audio/<lang>/replaced/` with
a timestamp, and the audit entry names both checksums, so no recording is lost without a trace.
The renderer (`hotline prompts render`) keeps a file whose checksum it did not write, so an
upload is never overwritten by the synthetic voice.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import tomllib
import wave
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from hotline.accounts import Role, audit, require_role
from hotline.db import transaction, utcnow

prompts_bp = Blueprint("admin_prompts", __name__, template_folder="templates", url_prefix="/admin/prompts")

LANG = "zh"
SAMPLE_RATE = 8000
MAX_BYTES = 20 * 1024 * 1024
MAX_SECONDS = 300


class UploadError(Exception):
    """The upload is not a usable recording (the message is for the administrator)."""


def prompts_dir() -> Path:
    configured: Path | None = current_app.extensions["hotline"]["settings"].prompts_dir
    # voice-prompts/ beside the packages, as the softswitch finds it (agent-desk/agent_desk/ -> repo).
    return configured or Path(__file__).resolve().parents[2] / "voice-prompts"


def catalog() -> dict[str, str]:
    path = prompts_dir() / "catalog.toml"
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {k: v for k, v in table.get("prompts", {}).items() if isinstance(v, str)}


def audio_path(prompt_id: str) -> Path:
    return prompts_dir() / "audio" / LANG / f"{prompt_id}.wav"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def telephone_wav(upload: Path, out: Path) -> float:
    """Write `upload` to `out` as 8 kHz mono 16-bit WAV (converting if needed); its length in s."""
    with upload.open("rb") as f:
        head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise UploadError("请上传 WAV 格式的录音文件")
    try:
        with wave.open(str(upload), "rb") as w:
            fits = (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2)
    except (wave.Error, EOFError):
        fits = False  # e.g. a float or extensible WAV: sox reads those
    if fits:
        shutil.copyfile(upload, out)
    else:
        sox = shutil.which("sox")
        if sox is None:
            raise UploadError("录音需为 8kHz、单声道、16位 WAV（服务器未安装 sox，无法自动转换）")
        done = subprocess.run(
            [
                sox,
                str(upload),
                "-r",
                str(SAMPLE_RATE),
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
                str(out),
            ],
            capture_output=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            raise UploadError("无法识别该 WAV 文件，请导出为 8kHz、单声道、16位 WAV 后重试")
    with wave.open(str(out), "rb") as w:
        seconds = w.getnframes() / w.getframerate()
    if seconds <= 0.1:
        raise UploadError("录音为空")
    if seconds > MAX_SECONDS:
        raise UploadError(f"录音不能超过 {MAX_SECONDS // 60} 分钟")
    return seconds


@prompts_bp.url_value_preprocessor
def _limit_uploads(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Runs before the CSRF check reads the form, so an oversized upload is cut off at once.
    request.max_content_length = MAX_BYTES + 64 * 1024


@prompts_bp.errorhandler(RequestEntityTooLarge)
def _too_large(_error: RequestEntityTooLarge) -> ResponseReturnValue:
    flash(f"提示音未更新：文件过大（不超过 {MAX_BYTES // (1024 * 1024)} MB）", "error")
    return redirect(url_for("admin_prompts.index")), 303


@prompts_bp.get("/")
@require_role(Role.ADMIN)
def index() -> ResponseReturnValue:
    prompts = [
        {"id": prompt_id, "text": text, "has_audio": audio_path(prompt_id).is_file()}
        for prompt_id, text in sorted(catalog().items())
    ]
    return render_template("desk/admin_prompts.html", prompts=prompts)


@prompts_bp.get("/<prompt_id>.wav")
@require_role(Role.ADMIN)
def play(prompt_id: str) -> ResponseReturnValue:
    path = audio_path(prompt_id)
    if prompt_id not in catalog() or not path.is_file():
        abort(404)
    # conditional=True answers range requests, which the audio element uses to seek.
    response = send_file(path, mimetype="audio/wav", conditional=True, max_age=0)
    response.headers["Cache-Control"] = "no-store"  # a replacement must be heard at once
    return response


@prompts_bp.post("/<prompt_id>")
@require_role(Role.ADMIN)
def upload(prompt_id: str) -> ResponseReturnValue:
    if prompt_id not in catalog():
        abort(404)
    file = request.files.get("audio")
    try:
        if file is None or not file.filename:
            raise UploadError("请选择要上传的录音文件")
        with tempfile.TemporaryDirectory() as tmp:
            raw, converted = Path(tmp) / "upload", Path(tmp) / "converted.wav"
            file.save(raw)
            seconds = telephone_wav(raw, converted)
            archived = _install(prompt_id, converted)
    except UploadError as exc:
        flash(f"提示音 {prompt_id} 未更新：{exc}", "error")
        return redirect(url_for("admin_prompts.index"))
    kept = f"，原音频已保存为 {archived}" if archived else ""
    flash(f"提示音 {prompt_id} 已替换为上传的录音（{seconds:.1f} 秒）{kept}", "info")
    return redirect(url_for("admin_prompts.index"))


def _install(prompt_id: str, converted: Path) -> str:
    """Move the current audio aside, put the new one in place, audit both; the archived path."""
    target = audio_path(prompt_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    old_sha, archived = "", ""
    if target.is_file():
        old_sha = sha256(target)
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        keep = target.parent / "replaced" / f"{prompt_id}-{stamp}.wav"
        keep.parent.mkdir(exist_ok=True)
        shutil.copy2(target, keep)  # copied first: the old audio exists somewhere at every moment
        archived = str(keep.relative_to(prompts_dir()))
    partial = target.with_name(f".upload-{target.name}")
    shutil.copyfile(converted, partial)
    partial.replace(target)
    with transaction(current_app.extensions["hotline"]["db"]) as session:
        audit(
            session,
            "prompt.replace",
            actor_id=current_user.id,
            target_type="prompt",
            target_id=prompt_id,
            detail={"old_sha256": old_sha, "new_sha256": sha256(target), "archived": archived},
            source=request.remote_addr or "",
        )
    return archived
