"""`hotline serve` end to end: every part up, crashes healed, backups taken live, clean stop.

One hotline is started for the module (it takes a few seconds); the tests run against it in
order and the last one stops it with Ctrl-C (SIGINT), as a user would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hotline import bus
from hotline.db import make_engine
from tests.helpers import wait_until

pytestmark = [pytest.mark.sip, pytest.mark.slow]

WORKERS = 3


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    cwd: Path
    web: str
    public_web: str
    sip_port: int
    redis_url: str
    database_url: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def health(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"{self.web}/healthz", timeout=5) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as err:
            return dict(json.load(err))


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.fixture(scope="module")
def hotline(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Running]:
    cwd = tmp_path_factory.mktemp("serve")
    ports = request.getfixturevalue("ports")
    sip_port, web_port, public_port = ports(), ports(), ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(
        HOTLINE_VAR_DIR=str(cwd / "var"),
        HOTLINE_SIP_PORT=str(sip_port),
        HOTLINE_WEB_PORT=str(web_port),
        HOTLINE_PUBLIC_WEB_PORT=str(public_port),
        HOTLINE_SIP_WORKERS=str(WORKERS),
        HOTLINE_SIP_WORKER_BASE_PORT=str(ports(WORKERS)),
        HOTLINE_RTP_BASE_PORT=str(ports(WORKERS * 40)),
        PYTHONUNBUFFERED="1",
    )
    # A database of its own (the shared test database is emptied by other tests).
    database_url = request.getfixturevalue("new_database")()
    env["DATABASE_URL"] = database_url
    if os.environ.get("REDIS_URL"):
        # Another Redis database than the other tests use, so their flushes don't touch it.
        redis_url = urllib.parse.urlsplit(os.environ["REDIS_URL"])._replace(path="/10").geturl()
        env["REDIS_URL"] = redis_url
        bus.connect(redis_url).flushdb()
    else:
        env.pop("REDIS_URL", None)
        redis_url = f"unix://{(cwd / 'var' / 'run' / 'redis.sock').resolve()}"
    log = cwd / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hotline", "serve"], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    web, public_web = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{public_port}"
    running = Running(proc, log, env, cwd, web, public_web, sip_port, redis_url, database_url)
    try:
        started = wait_until(
            lambda: "all parts started" in running.output() or proc.poll() is not None, timeout=90
        )
        assert started and proc.poll() is None, running.output()
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_serve_prints_where_each_part_listens_and_the_first_login_passwords(hotline: Running) -> None:
    out = hotline.output()
    assert f"http://127.0.0.1:{hotline.web.rsplit(':', 1)[1]}" in out
    assert f"sip:127.0.0.1:{hotline.sip_port}" in out
    assert "首次登录密码" in out and "supervisor" in out


def _status(url: str) -> int:
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        with opener.open(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def test_the_public_side_serves_citizens_and_nothing_of_the_staffs(hotline: Running) -> None:
    assert f"{hotline.public_web} (public portal, Open311)" in hotline.output()
    with urllib.request.urlopen(f"{hotline.public_web}/portal/lookup", timeout=5) as page:
        assert "查询" in page.read().decode()
    with urllib.request.urlopen(f"{hotline.public_web}/open311/v2/services.json", timeout=5) as services:
        assert json.load(services), "no services on the public Open311"
    # The desk, the department portal and the login exist only on the internal web.
    for path in ("/login", "/desk/", "/dept/", "/admin/menu", "/wallboard/"):
        assert _status(f"{hotline.public_web}{path}") == 404, path
        assert _status(f"{hotline.web}{path}") != 404, path


def test_healthz_reports_database_redis_and_every_sip_worker(hotline: Running) -> None:
    health = wait_until(lambda: (h := hotline.health())["sip"].get("workers_up") == WORKERS and h, timeout=30)
    assert health, hotline.health()
    assert health["database"]["ok"] and health["redis"]["ok"]
    assert health["status"] == "ok"
    assert health["sip"]["free_legs"] == WORKERS * 4


def test_kamailio_answers_sip_options_on_the_public_port(
    hotline: Running, sip_options: Callable[..., str]
) -> None:
    assert wait_until(
        lambda: sip_options("127.0.0.1", hotline.sip_port).startswith("SIP/2.0 200"), timeout=10
    )


def _worker_pids(hotline: Running) -> dict[str, int]:
    client = bus.connect(hotline.redis_url)
    # Heartbeats are named sip-worker-N@host; one host here.
    return {name.split("@")[0]: int(fields["pid"]) for name, fields in bus.alive(client, "sip").items()}


def test_a_killed_sip_worker_is_restarted_within_5_seconds(hotline: Running) -> None:
    before = wait_until(lambda: (p := _worker_pids(hotline)) and len(p) == WORKERS and p, timeout=20)
    assert before
    victim = before["sip-worker-1"]
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    # The supervisor notices and starts a new process (the heartbeat then names it).
    restarted = wait_until(
        lambda: any(
            "sip-worker-1" in _cmdline(p) or "--index 1" in _cmdline(p)
            for p in _descendants(hotline.proc.pid)
            if p != victim and _alive(p)
        ),
        timeout=5,
        every=0.05,
    )
    assert restarted and time.monotonic() - killed < 5
    assert "sip-worker-1 exited with signal SIGKILL" in hotline.output()
    assert wait_until(lambda: _worker_pids(hotline).get("sip-worker-1") not in (None, victim), timeout=15)
    # The other workers were not touched.
    after = _worker_pids(hotline)
    assert after["sip-worker-0"] == before["sip-worker-0"] and after["sip-worker-2"] == before["sip-worker-2"]


def test_a_killed_kamailio_is_restarted_and_answers_again(
    hotline: Running, sip_options: Callable[..., str]
) -> None:
    def kamailio_main() -> int | None:
        for pid in _descendants(hotline.proc.pid):
            if os.path.basename(_cmdline(pid).split(" ", 1)[0]) == "kamailio" and os.getpgid(pid) == pid:
                return pid
        return None

    main = wait_until(kamailio_main, timeout=5)
    assert main
    os.kill(main, signal.SIGKILL)
    killed = time.monotonic()
    assert wait_until(lambda: kamailio_main() not in (None, main), timeout=5, every=0.05)
    assert time.monotonic() - killed < 5
    assert "kamailio exited with signal SIGKILL" in hotline.output()
    assert wait_until(
        lambda: sip_options("127.0.0.1", hotline.sip_port, 1.0).startswith("SIP/2.0 200"), timeout=15
    )


def _table_rows(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    from hotline.models import Base

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                t.name: sorted(tuple(map(str, row)) for row in conn.execute(t.select()))
                for t in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def test_a_backup_taken_while_serving_restores_onto_a_fresh_install(
    hotline: Running,
    tmp_path: Path,
    run_hotline: Callable[..., subprocess.CompletedProcess[str]],
    request: pytest.FixtureRequest,
) -> None:
    recordings = hotline.cwd / "var" / "recordings" / "2026" / "11" / "27"
    recordings.mkdir(parents=True, exist_ok=True)
    (recordings / "demo-caller.wav").write_bytes(os.urandom(64_000))
    backup_dir = tmp_path / "backup"
    env = {
        k: v for k, v in hotline.env.items() if k.startswith("HOTLINE_") or k in ("DATABASE_URL", "REDIS_URL")
    }
    created = run_hotline("backup", "create", str(backup_dir), env=env, cwd=hotline.cwd)
    assert created.returncode == 0, created.stderr
    assert run_hotline("backup", "verify", str(backup_dir), env=env, cwd=hotline.cwd).returncode == 0

    # A fresh install: another var/ and an empty database of the same backend.
    fresh_var = tmp_path / "fresh-var"
    fresh_db = request.getfixturevalue("new_database")()
    fresh_env = {**env, "HOTLINE_VAR_DIR": str(fresh_var), "DATABASE_URL": fresh_db}
    restored = run_hotline("backup", "restore", str(backup_dir), env=fresh_env, cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert _table_rows(fresh_db) == _table_rows(hotline.database_url)
    assert _table_rows(fresh_db)["users"], "the demo users were restored"
    assert (fresh_var / "recordings" / "2026" / "11" / "27" / "demo-caller.wav").read_bytes() == (
        recordings / "demo-caller.wav"
    ).read_bytes()

    # A tampered backup is refused by verify and by restore.
    (backup_dir / "recordings" / "2026" / "11" / "27" / "demo-caller.wav").write_bytes(b"tampered")
    assert run_hotline("backup", "verify", str(backup_dir), env=env, cwd=hotline.cwd).returncode != 0
    again = run_hotline(
        "backup",
        "restore",
        str(backup_dir),
        env={**fresh_env, "HOTLINE_VAR_DIR": str(tmp_path / "v2")},
        cwd=tmp_path,
    )
    assert again.returncode != 0 and "demo-caller.wav" in again.stderr


def test_ctrl_c_stops_everything_and_leaves_no_process_behind(hotline: Running) -> None:
    family = _descendants(hotline.proc.pid)
    assert len(family) >= WORKERS + 3  # workers, kamailio (+ its children), rq worker, web
    hotline.proc.send_signal(signal.SIGINT)
    assert hotline.proc.wait(timeout=40) == 0
    assert wait_until(lambda: not [p for p in family if _alive(p)], timeout=10), [
        (_cmdline(p)) for p in family if _alive(p)
    ]
    assert "hotline: stopped" in hotline.output()
