"""Menu administration: a broken menu is shown line by line and never saved; a valid one is saved,
audited, kept in versions and announced to the SIP workers; only administrators, only with CSRF."""

from __future__ import annotations

import hashlib
import html
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent_desk.menu_files import KEEP_VERSIONS, MenuFiles
from hotline.accounts import AuditEntry, Role
from hotline.settings import IVR_MENU_RELOAD_CHANNEL, Settings
from hotline.web import close_app, create_app
from tests.helpers import logged_in
from tests.ivr.test_menu import BAD_MENU

REPO = Path(__file__).resolve().parents[2]
DEFAULT = (REPO / "ivr" / "menus" / "default.toml").read_text(encoding="utf-8")

# An unknown prompt (line 3), an unreachable node (line 18) and two nodes that trap the caller
# (lines 10 and 14): the menu `hotline ivr check` is tested with.
BROKEN = BAD_MENU.replace('"2" = { action = "dance" }\n', "").replace('"x" =', '"3" =')
VALID = DEFAULT.replace('"9" = "voicemail"', '"8" = "voicemail"').replace('"留言" = "9"', '"留言" = "8"')


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def admin(
    settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis
) -> Iterator[tuple[Flask, FlaskClient, str]]:
    app = create_app(settings)
    client, token = logged_in(app, db, "root", Role.ADMIN)
    yield app, client, token
    close_app(app)


@pytest.fixture
def reloads(redis_client: redis.Redis) -> Iterator[redis.client.PubSub]:
    """What a SIP worker's control thread hears on the reload channel."""
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(IVR_MENU_RELOAD_CHANNEL)
    pubsub.get_message(timeout=1.0)  # the subscription itself
    yield pubsub
    pubsub.close()


def heard(pubsub: redis.client.PubSub, timeout: float = 3.0) -> list[str]:
    found, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message is not None:
            found.append(str(message["data"]))
    return found


def base_of(page: str) -> str:
    match = re.search(r'name="base_sha256" value="([0-9a-f]{64})"', page)
    assert match, page
    return match.group(1)


def save(client: FlaskClient, token: str, text: str, base: str | None = None) -> tuple[int, str]:
    base = base or base_of(client.get("/admin/menu/").get_data(as_text=True))
    response = client.post(
        "/admin/menu/save",
        data={"csrf_token": token, "menu": text, "base_sha256": base},
        follow_redirects=True,
    )
    return response.status_code, response.get_data(as_text=True)


def test_the_page_shows_the_shipped_default_until_a_menu_is_saved(
    admin: tuple[Flask, FlaskClient, str],
) -> None:
    _app, client, _token = admin
    page = client.get("/admin/menu/").get_data(as_text=True)
    assert "当前使用系统自带的默认菜单" in page and "暂无历史版本" in page
    assert '"0" = "queue:general"' in html.unescape(page.split("<textarea", 1)[1])
    assert base_of(page) == sha(DEFAULT)
    assert "SIP 边缘约一秒内按新菜单放行，无需重启" in page
    assert 'href="/admin/menu/"' in client.get("/admin/prompts/").get_data(as_text=True)  # in the nav


def test_a_broken_menu_shows_its_problems_by_line_and_nothing_is_saved(
    admin: tuple[Flask, FlaskClient, str],
    settings: Settings,
    db: sessionmaker[Session],
    reloads: redis.client.PubSub,
) -> None:
    _app, client, token = admin
    status, page = save(client, token, BROKEN.replace("\n", "\r\n"))  # as a browser sends it
    assert status == 422
    assert "菜单有问题，未保存" in page
    problems = re.findall(
        r"<td>第&nbsp;(\d+)&nbsp;行</td>\s*<td><code>(.*?)</code></td>\s*<td>(.*?)</td>", page
    )
    by_line = {int(line): (code, message) for line, code, message in problems}
    assert "未知的提示音 &#39;no_such_prompt&#39;" in by_line[3][1]
    assert by_line[3][0] == "[nodes.entry]"  # the line itself, beside its number
    assert "无法从 &#39;entry&#39; 到达" in by_line[18][1]
    assert "没有出口" in by_line[10][1] and "没有出口" in by_line[14][1]
    assert "no_such_prompt" in page.split("<textarea", 1)[1]  # the text stays in the editor

    # Not TOML at all, and an unknown action: still line-precise.
    status, page = save(client, token, 'start = "entry"\n[nodes.entry]\nprompts = [\n')
    assert status == 422 and "不是有效的 TOML" in page
    status, page = save(client, token, BROKEN.replace('"3" = "queue:general"', '"3" = "dance"'))
    assert status == 422 and re.search(
        r"第&nbsp;8&nbsp;行</td>\s*<td><code>&#34;3&#34; = &#34;dance&#34;", page
    )

    assert not settings.edited_ivr_menu.exists()
    with db() as session:
        assert session.scalars(select(AuditEntry).where(AuditEntry.action == "ivr_menu.save")).all() == []
    assert heard(reloads, timeout=0.5) == []


def test_check_alone_saves_nothing(admin: tuple[Flask, FlaskClient, str], settings: Settings) -> None:
    _app, client, token = admin
    ok = client.post("/admin/menu/check", data={"csrf_token": token, "menu": VALID, "base_sha256": "x"})
    assert ok.status_code == 200 and "校验通过，可以保存" in ok.get_data(as_text=True)
    assert not settings.edited_ivr_menu.exists()


def test_a_valid_menu_is_saved_audited_announced_and_the_earlier_one_kept(
    admin: tuple[Flask, FlaskClient, str],
    settings: Settings,
    db: sessionmaker[Session],
    reloads: redis.client.PubSub,
) -> None:
    _app, client, token = admin
    status, page = save(client, token, VALID)
    assert status == 200 and "菜单已保存" in page
    # A worker would hear it (this test's subscriber is the only listener).
    assert "已通知 1 个话务进程" in page
    assert settings.edited_ivr_menu.read_text(encoding="utf-8") == VALID
    assert heard(reloads) == [sha(VALID)]
    assert "当前菜单由 root 于" in page and "暂无历史版本" in page  # the default was not a file

    second = VALID.replace("timeout_s = 5", "timeout_s = 4")
    status, page = save(client, token, second)
    assert status == 200 and "新增 1 行，删除 1 行" in page
    assert heard(reloads) == [sha(second)]
    (kept,) = MenuFiles(settings.edited_ivr_menu).versions()
    assert re.search(r"<td>[0-9-]+ [0-9:]+</td><td>root</td>", page)  # who saved the earlier one
    earlier = client.get(f"/admin/menu/versions/{kept.name}").get_data(as_text=True)
    assert "正在查看" in earlier and "timeout_s = 5" in earlier and "timeout_s = 4" not in earlier
    assert client.get("/admin/menu/versions/..%2Fhotline.db").status_code == 404
    assert client.get("/admin/menu/versions/menu.toml.20200101T000000000000Z").status_code == 404

    with db() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "ivr_menu.save").order_by(AuditEntry.id)
        ).all()
    assert [(e.detail["old_sha256"], e.detail["new_sha256"]) for e in entries] == [
        (sha(DEFAULT), sha(VALID)),
        (sha(VALID), sha(second)),
    ]
    assert entries[1].detail["kept"] == kept.name and entries[1].actor_id is not None

    # Restoring the earlier version from its page is a save like any other.
    status, page = save(client, token, VALID, base=base_of(earlier))
    assert status == 200 and settings.edited_ivr_menu.read_text(encoding="utf-8") == VALID
    listed = re.findall(r"<td>([0-9-]+ [0-9:]+)</td><td>root</td>", page)
    assert len(listed) == 2 and listed == sorted(listed, reverse=True)  # newest first


def test_a_save_over_someone_elses_newer_menu_is_refused(
    admin: tuple[Flask, FlaskClient, str], settings: Settings
) -> None:
    _app, client, token = admin
    stale_base = base_of(client.get("/admin/menu/").get_data(as_text=True))
    assert save(client, token, VALID)[0] == 200  # a colleague saves meanwhile
    status, page = save(client, token, VALID.replace("timeout_s = 5", "timeout_s = 3"), base=stale_base)
    assert status == 409 and "保存前菜单已被他人修改" in page and "timeout_s = 3" in page
    assert settings.edited_ivr_menu.read_text(encoding="utf-8") == VALID


def test_only_administrators_and_only_with_csrf(
    admin: tuple[Flask, FlaskClient, str], settings: Settings, db: sessionmaker[Session]
) -> None:
    app, client, token = admin
    for role in (Role.AGENT, Role.SUPERVISOR):
        other, other_token = logged_in(app, db, f"u-{role}", role)
        assert other.get("/admin/menu/").status_code == 403
        form = {"csrf_token": other_token, "menu": VALID, "base_sha256": sha(DEFAULT)}
        assert other.post("/admin/menu/save", data=form).status_code == 403
        assert other.post("/admin/menu/check", data=form).status_code == 403
    assert app.test_client().get("/admin/menu/").status_code == 302  # to the login page
    refused = client.post("/admin/menu/save", data={"menu": VALID, "base_sha256": sha(DEFAULT)})
    assert refused.status_code == 400
    forged = {"csrf_token": "forged", "menu": VALID, "base_sha256": sha(DEFAULT)}
    assert client.post("/admin/menu/save", data=forged).status_code == 400
    assert not settings.edited_ivr_menu.exists()


def test_a_menu_set_in_the_config_file_is_shown_read_only(
    settings: Settings, db: sessionmaker[Session], redis_client: redis.Redis, tmp_path: Path
) -> None:
    configured = tmp_path / "city-menu.toml"
    configured.write_text(VALID, encoding="utf-8")
    app = create_app(settings.model_copy(update={"ivr_menu": configured}))
    try:
        client, token = logged_in(app, db, "root", Role.ADMIN)
        page = client.get("/admin/menu/").get_data(as_text=True)
        assert "由配置文件中的 ivr_menu 指定" in page and str(configured) in page
        assert "<textarea" not in page and "保存并生效</button>" not in page and "&#34;8&#34;" in page
        form = {"csrf_token": token, "menu": DEFAULT, "base_sha256": sha(VALID)}
        refused = client.post("/admin/menu/save", data=form, follow_redirects=True)
        assert "此处未保存任何内容" in refused.get_data(as_text=True)
        assert not settings.edited_ivr_menu.exists() and configured.read_text(encoding="utf-8") == VALID
    finally:
        close_app(app)


def test_only_the_last_versions_are_kept(tmp_path: Path) -> None:
    files = MenuFiles(tmp_path / "ivr" / "menu.toml")
    base = DEFAULT
    for n in range(KEEP_VERSIONS + 3):
        text = f"# version {n}\n{DEFAULT}"
        files.save(text, base_text=base)
        base = text
    versions = files.versions()
    assert len(versions) == KEEP_VERSIONS
    # Newest first; the oldest two (and the first, which replaced no file) are gone.
    assert [files.read_version(v.name).split("\n", 1)[0] for v in versions] == [  # type: ignore[union-attr]
        f"# version {n}" for n in range(KEEP_VERSIONS + 1, 1, -1)
    ]
    assert not list((tmp_path / "ivr").glob("*.tmp"))
