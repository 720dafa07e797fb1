"""Administration of the IVR menu (/admin/menu): edit the TOML, check it, save it, the SIP workers reload it.

The desk may not import `ivr`, where menus are parsed and checked, so a menu is checked by the
same command an operator runs: `hotline ivr check -` (this interpreter, the text on stdin), whose
`<stdin>:<line>: message` lines are shown beside the text. A menu with any problem is never saved.
A valid one is written to var/ivr/menu.toml (`menu_files`), audited, and announced on
`IVR_MENU_RELOAD_CHANNEL`; every worker loads it for its next calls, calls in progress keep the
menu they started with. When `ivr_menu` is set the config file owns the menu: the page shows it
read-only. Which menu is in effect follows `Settings.ivr_menu_file` (the workers' own order).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent_desk.menu_files import MenuFiles, StaleMenu, Version, sha256
from hotline.accounts import AuditEntry, Role, User, audit, require_role
from hotline.db import transaction
from hotline.settings import IVR_MENU_RELOAD_CHANNEL, Settings

menu_bp = Blueprint("admin_menu", __name__, template_folder="templates", url_prefix="/admin/menu")

LOCAL = ZoneInfo("Asia/Shanghai")
MAX_CHARS = 64 * 1024
CHECK_TIMEOUT_S = 30
SAVE_ACTION = "ivr_menu.save"
STALE = "保存前菜单已被他人修改，您的内容未保存。请对照当前菜单（可在下方“查看”各版本）确认后再保存"
_PROBLEM = re.compile(r"^<stdin>:(\d+): (.*)$")


@dataclass
class Check:
    """What `hotline ivr check -` said about a text: problems by line, or why it could not check."""

    problems: list[tuple[int, str]] = field(default_factory=list)
    error: str = ""  # the check itself failed (no catalog, bad settings...): nothing is saved either

    @property
    def ok(self) -> bool:
        return not self.problems and not self.error


def check_menu(text: str) -> Check:
    settings: Settings = _ext()["settings"]
    env = dict(os.environ)
    # The check must see the prompts this web process sees (tests and some deployments pass
    # settings in code rather than through the environment).
    if settings.prompts_dir is not None:
        env["HOTLINE_PROMPTS_DIR"] = str(settings.prompts_dir)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "hotline", "ivr", "check", "-"],
            input=text.encode("utf-8"),
            capture_output=True,
            env=env,
            timeout=CHECK_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(error=f"无法运行菜单校验：{exc}")
    if done.returncode == 0:
        return Check()
    result = Check()
    for line in done.stderr.decode("utf-8", "replace").splitlines():
        match = _PROBLEM.match(line)
        if match:
            result.problems.append((int(match.group(1)), match.group(2)))
        elif line.strip():
            result.error = f"{result.error}\n{line}".strip()
    if not result.problems and not result.error:
        result.error = f"菜单校验失败（退出码 {done.returncode}）"
    return result


def _ext() -> dict[str, Any]:
    ext: dict[str, Any] = current_app.extensions["hotline"]
    return ext


def _files() -> MenuFiles:
    settings: Settings = _ext()["settings"]
    return MenuFiles(settings.edited_ivr_menu)


def shipped_default() -> Path:
    """ivr/menus/default.toml, found as the data file it is: the desk reads it, never imports `ivr`."""
    spec = importlib.util.find_spec("ivr")  # locates the package without running it
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "menus" / "default.toml"


@dataclass
class Effective:
    text: str
    source: str  # config (read-only), edited, default
    path: Path


def effective() -> Effective:
    """The menu the workers run, in their order: `ivr_menu`, the edited file, the shipped default."""
    settings: Settings = _ext()["settings"]
    configured = settings.ivr_menu_file()
    path = configured or shipped_default()
    source = "config" if settings.ivr_menu is not None else "edited" if configured else "default"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        text = f"# 无法读取 {path}：{exc}\n"
    return Effective(text, source, path)


def _savers(session: Session) -> dict[str, tuple[str, dt.datetime]]:
    """Who saved each version and when, by the name it is (or will be) kept under."""
    rows = session.execute(
        select(AuditEntry, User.display_name)
        .outerjoin(User, User.id == AuditEntry.actor_id)
        .where(AuditEntry.action == SAVE_ACTION)
        .order_by(AuditEntry.id.desc())
        .limit(100)
    ).all()
    return {str(entry.detail.get("version", "")): (name or "未知", entry.at) for entry, name in rows}


def _local(when: dt.datetime) -> str:
    return when.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S")


def _page(
    text: str,
    *,
    base: Effective,
    check: Check | None = None,
    viewing: Version | None = None,
    refused: str = "",
    status: int = 200,
) -> ResponseReturnValue:
    factory: sessionmaker[Session] = _ext()["db"]
    with factory() as session:
        savers = _savers(session)
    files = _files()
    versions = [
        {
            "name": v.name,
            "saved_at": _local(v.saved_at),
            "saved_by": savers[v.name][0] if v.name in savers else "未知（非本页保存）",
        }
        for v in files.versions()
    ]
    current = savers.get(files.current_version()) if base.source == "edited" else None
    lines = text.splitlines()
    problems = [
        {"line": n, "text": lines[n - 1] if 0 < n <= len(lines) else "", "message": message}
        for n, message in (check.problems if check else [])
    ]
    body = render_template(
        "desk/admin_menu.html",
        text=text,
        base=base,
        base_sha256=sha256(base.text),
        edited_path=files.target,
        current={"saved_by": current[0], "saved_at": _local(current[1])} if current else None,
        check=check,
        problems=problems,
        refused=refused,
        versions=versions,
        viewing=viewing,
        viewing_when=next((v["saved_at"] for v in versions if viewing and v["name"] == viewing.name), ""),
    )
    return body, status


@menu_bp.get("/")
@require_role(Role.ADMIN)
def index() -> ResponseReturnValue:
    base = effective()
    return _page(base.text, base=base)


@menu_bp.get("/versions/<name>")
@require_role(Role.ADMIN)
def version(name: str) -> ResponseReturnValue:
    files = _files()
    found = next((v for v in files.versions() if v.name == name), None)
    text = files.read_version(name) if found else None
    if found is None or text is None:
        abort(404)
    return _page(text, base=effective(), viewing=found)


class Refused(Exception):
    """The submitted menu is not even checked (the message says why, in Chinese)."""


@menu_bp.errorhandler(Refused)
def _refused(exc: Refused) -> ResponseReturnValue:
    flash(str(exc), "error")
    return redirect(url_for("admin_menu.index"), 303)


def _submitted() -> tuple[Effective, str]:
    """The menu in effect and the submitted text, with the line ends a browser changed undone."""
    base, raw = effective(), request.form.get("menu", "")
    if base.source == "config":
        raise Refused(
            f"菜单由配置文件中的 ivr_menu（{base.path}）管理，请在配置文件中修改；此处未保存任何内容"
        )
    if not raw.strip() or len(raw) > MAX_CHARS:
        raise Refused(f"菜单内容为空或过长（不超过 {MAX_CHARS // 1024} KB）；未保存")
    text = raw.replace("\r\n", "\n").replace("\r", "\n")  # a textarea sends CRLF
    return base, text if text.endswith("\n") else text + "\n"


@menu_bp.post("/check")
@require_role(Role.ADMIN)
def check() -> ResponseReturnValue:
    base, text = _submitted()
    result = check_menu(text)
    return _page(text, base=base, check=result, status=200 if result.ok else 422)


@menu_bp.post("/save")
@require_role(Role.ADMIN)
def save() -> ResponseReturnValue:
    base, text = _submitted()
    if request.form.get("base_sha256") != sha256(base.text):
        return _page(text, base=base, refused=STALE, status=409)
    if text == base.text and base.source == "edited":
        flash("菜单没有改动，无需保存", "info")
        return redirect(url_for("admin_menu.index"), 303)
    result = check_menu(text)
    if not result.ok:
        return _page(text, base=base, check=result, status=422)
    try:
        with transaction(_ext()["db"]) as session:
            saved = _files().save(text, base_text=base.text)
            audit(
                session,
                SAVE_ACTION,
                actor_id=current_user.id,
                target_type="ivr_menu",
                target_id="menu.toml",
                detail={
                    "old_sha256": saved.old_sha256,
                    "new_sha256": saved.new_sha256,
                    "version": saved.version,
                    "kept": saved.kept,
                    "was": base.source,
                    "lines_added": saved.added,
                    "lines_removed": saved.removed,
                },
                source=request.remote_addr or "",
            )
    except StaleMenu:
        return _page(text, base=effective(), refused=STALE, status=409)
    flash(
        f"菜单已保存（新增 {saved.added} 行，删除 {saved.removed} 行）。{_announce(saved.new_sha256)}", "info"
    )
    return redirect(url_for("admin_menu.index"), 303)


def _announce(new_sha256: str) -> str:
    """Tell the workers; the sentence for the administrator about who heard it."""
    client: redis.Redis = _ext()["redis"]
    try:
        listeners = int(client.publish(IVR_MENU_RELOAD_CHANNEL, new_sha256))
    except redis.RedisError:
        return "暂时无法通知话务进程（Redis 不可用），它们重新连上后会自动加载新菜单。"
    if listeners == 0:
        return "当前没有运行中的话务进程；启动后即使用新菜单。"
    return f"已通知 {listeners} 个话务进程：新来电即按新菜单，通话中的来电仍按原菜单。"
