"""The public status look-up under load (wrk), next to a bare Flask endpoint served the same way.

Both apps run under `hotline.webserver.run(public=True)`, as `hotline web --public` serves the
citizens' side (gunicorn, one process, gthread with `public_web_threads`, the same options and
access log): the hotline's public app (portal and Open311), and a Flask app with one route that
answers the same POST with the same 303 and touches nothing. wrk then POSTs the look-up form
(ticket number + phone, with the CSRF token and session cookie a browser would have) to each in
turn and the script
prints both p99s and their ratio, and the server's CPU per request (its process group's CPU
time over the run, divided by the requests served: steadier than latencies on a shared
machine). Target (issue 5): the look-up's p99 within 3x of the bare one.

    python bench/portal_lookup.py                          # SQLite + embedded Redis under a temp dir
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/bench REDIS_URL=redis://127.0.0.1:6379/14 \\
        python bench/portal_lookup.py

Needs `wrk` (Debian package). Options: --duration (s), --connections, --threads (wrk's).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

# bench/tickets.py would shadow the `tickets` package: keep this folder off the import path, and
# put the repository on it for tests.helpers (as bench/sip_load.py does).
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask, redirect, request  # noqa: E402
from flask.typing import ResponseReturnValue  # noqa: E402
from sqlalchemy import select  # noqa: E402

from hotline import embedded_redis, migrate, webserver  # noqa: E402
from hotline.db import make_engine, make_session_factory, transaction  # noqa: E402
from hotline.settings import Settings, load_settings  # noqa: E402
from tests.helpers import free_port  # noqa: E402
from tickets.models import Channel, Department, DepartmentKind  # noqa: E402
from tickets.service import create_ticket  # noqa: E402

PHONE = "13800001234"
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = {cookie}
"""


def bare_app() -> Flask:
    """The least a Flask endpoint can do for the same request: read the form, redirect."""
    app = Flask("bare")

    @app.post("/portal/lookup")
    def lookup() -> ResponseReturnValue:
        return redirect(f"/portal/tickets/{request.form.get('number', '')}", 303)

    return app


def serve(kind: str, settings: Settings) -> int:
    """Run one of the two apps the way `hotline web` runs (the child process's entry)."""
    if kind == "bare":
        # Swap in the bare app for the real one; the serving stays the same.
        app = bare_app()
        vars(webserver)["create_public_app"] = lambda _settings: app
    return webserver.run(settings, public=True)


def _settings(var: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(HOTLINE_VAR_DIR=str(var), HOTLINE_PUBLIC_WEB_PORT=str(port), HOTLINE_LOG_LEVEL="WARNING")
    return env


def _wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers: up
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def _form_state(base: str, number: str) -> tuple[str, str]:
    """The request body and Cookie header a browser would send after opening the look-up page."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/portal/lookup").read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None, "no CSRF token on the look-up page"
    body = urllib.parse.urlencode({"csrf_token": token[1], "number": number, "phone": PHONE})
    check = opener.open(urllib.request.Request(f"{base}/portal/lookup", data=body.encode()))
    assert f"/portal/tickets/{number}" in check.url, "the look-up did not find the ticket"
    return body, "; ".join(f"{c.name}={c.value}" for c in jar)


def _group_cpu(pgid: int) -> float:
    """CPU seconds used so far by the processes of a process group (gunicorn and its worker)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ..., utime (11), stime (12)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, body: str, cookie: str, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    script = folder / "lookup.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(body), cookie=json.dumps(cookie)))
    command = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
        "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def latency(label: str) -> float:
        found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        assert found is not None, out
        return float(found[1]) * units[found[2]]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rate is not None, out
    return {
        "p50": latency("50%"),
        "p99": latency("99%"),
        "rate": float(rate[1]),
        "bad": float(errors[1]) if errors else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=["real", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, load_settings())

    folder = Path(tempfile.mkdtemp(prefix="bench-lookup-"))
    redis_proc = None
    if not os.environ.get("REDIS_URL"):
        socket = folder / "redis.sock"
        redis_proc = embedded_redis.start(socket, folder / "redis")
        os.environ["REDIS_URL"] = f"unix://{socket}"
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{folder / 'bench.db'}")
    engine = make_engine(os.environ["DATABASE_URL"])
    migrate.upgrade(engine)
    with transaction(make_session_factory(engine)) as session:
        # Runs again on the same database: the department stays from the first run.
        if session.scalar(select(Department.id).where(Department.code == "bench-lookup")) is None:
            name = "基准测试单位（查询）"
            session.add(Department(code="bench-lookup", name=name, kind=DepartmentKind.BUREAU))
        ticket = create_ticket(session, channel=Channel.PORTAL, content="基准测试：查询", caller_phone=PHONE)
        number = ticket.number
    engine.dispose()

    results = {}
    try:
        for kind in ("bare", "real"):
            port = free_port()
            env = _settings(folder / f"var-{kind}", port)
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", kind], env=env, start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=(folder / f"{kind}.log").open("wb"),
            )  # fmt: skip
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_up(f"{base}/portal/lookup")
                body, cookie = _form_state(base, number) if kind == "real" else (f"number={number}", "")
                cpu = _group_cpu(server.pid)
                results[kind] = _wrk(f"{base}/portal/lookup", body, cookie, args, folder)
                served = results[kind]["rate"] * args.duration
                results[kind]["cpu_ms"] = (_group_cpu(server.pid) - cpu) / served * 1e3
            finally:
                os.killpg(server.pid, 15)
                server.wait(timeout=20)
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)

    backend = os.environ["DATABASE_URL"].split(":", 1)[0]
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, database {backend}")
    for kind, label in (("bare", "bare Flask endpoint"), ("real", "status look-up (number + phone)")):
        r = results[kind]
        print(
            f"  {label}: {r['rate']:.0f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms,"
            f" server CPU {r['cpu_ms']:.2f} ms per request"
            + (f", {r['bad']:.0f} non-2xx/3xx" if r["bad"] else "")
        )
    ratio = results["real"]["p99"] / results["bare"]["p99"]
    print(f"  p99 ratio look-up / bare: {ratio:.2f}x (target <= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
