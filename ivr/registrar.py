"""Seat phones at the Kamailio registrar: passwords in from the `seats` table, registrations out to the ACD.

`hotline registrar` runs one loop beside Kamailio (the supervisor starts it with the SIP edge).
Every second it:
- reads the active seats' extensions and SIP passwords (SQL) and, when they differ from what
  Kamailio was last given, pushes the difference into its `seatpw` htable over the control socket
  (`kamcmd htable.sets` / `htable.delete`, the secrets on kamcmd's stdin, never on a command line)
  and rewrites the file Kamailio loads at start (mode 0600), so a restarted Kamailio knows every
  seat before the first REGISTER. Reading the table each second, instead of being told when a seat
  is saved, means any writer (the admin page, a restore, the CLI) reaches Kamailio within a second;
- reads which extensions have a live contact (`kamcmd ul.dump`) and sets
  `AcdStore.set_registered` where Redis says otherwise: a phone that unregisters or lets its
  registration expire is no longer offered calls;
- ends wrap-ups that are over (`AcdStore.sweep`), so a seat is ready on time even while no worker
  has callers waiting.
When Kamailio does not answer, registrations are left as they are (unknown is not unregistered)
and everything is pushed again once it answers.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Seat
from acd.store import AcdStore
from hotline.settings import Settings
from ivr import kamailio

log = logging.getLogger(__name__)

ROUND_S = 1.0
FULL_PUSH_EVERY = 60  # rounds: push every password again now and then, whatever we think Kamailio has
HTABLE = "seatpw"
# What survives kamcmd's tokenizer and the config file's string syntax (secrets.token_urlsafe is).
_SAFE_PASSWORD = re.compile(r"^[A-Za-z0-9._~+=/-]{8,128}$")
_SAFE_EXTENSION = re.compile(r"^[0-9]{2,16}$")

Rpc = Callable[[list[str]], str]


def kamcmd(settings: Settings) -> Rpc:
    """Run RPC commands (one per line, on stdin) against this host's Kamailio; its output."""
    ctl = f"unix:{kamailio.runtime_dir(settings) / 'kamailio_ctl'}"

    def run(commands: list[str]) -> str:
        done = subprocess.run(
            ["kamcmd", "-s", ctl],
            input="".join(f"{c}\n" for c in commands),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if "kamcmd>" not in done.stdout or "could not connect" in (done.stdout + done.stderr).lower():
            raise OSError(f"kamcmd: {done.stderr.strip() or done.stdout.strip()[-200:]}")
        return done.stdout

    return run


def active_credentials(factory: sessionmaker[Session]) -> dict[str, str]:
    """Extension -> SIP password of every active seat Kamailio can take."""
    found: dict[str, str] = {}
    with factory() as session:
        for extension, password in session.execute(
            select(Seat.extension, Seat.sip_password).where(Seat.active.is_(True))
        ):
            if _SAFE_EXTENSION.match(extension) and _SAFE_PASSWORD.match(password or ""):
                found[extension] = password
            else:
                log.error("seat %s: extension or SIP password unusable by the registrar; reset it", extension)
    return found


def registered_extensions(dump: str) -> set[str]:
    """The AoRs of `ul.dump` output that have a contact that has not expired."""
    found: set[str] = set()
    aor = ""
    for line in dump.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "AoR":
            aor = value.strip()
        elif key == "Expires" and aor:
            value = value.strip()
            if value == "permanent" or (value.isdigit() and int(value) > 0):
                found.add(aor)
    return found


def write_credentials(path: Path, credentials: dict[str, str]) -> None:
    """The htable's content as config Kamailio runs at start (`event_route[htable:mod-init]`)."""
    lines = ["# Written by ivr/registrar.py from the seats table; do not edit."]
    if credentials:  # an empty route block is a syntax error: Kamailio would not start
        lines.append("event_route[htable:mod-init] {")
        lines += [f'\t$sht({HTABLE}=>{ext}) = "{pw}";' for ext, pw in sorted(credentials.items())]
        lines.append("}")
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    tmp.replace(path)


def write_initial(settings: Settings) -> None:
    """The credentials file before Kamailio starts; an unreachable database only delays it."""
    from hotline.db import make_engine, make_session_factory

    engine = make_engine(settings.effective_database_url)
    try:
        write_credentials(
            kamailio.seat_credentials_path(settings), active_credentials(make_session_factory(engine))
        )
    except Exception as exc:  # the registrar loop writes it as soon as the database answers
        log.warning("registrar: seat credentials not written before Kamailio starts: %s", exc)
    finally:
        engine.dispose()


class RegistrarSync:
    def __init__(self, settings: Settings, factory: sessionmaker[Session], store: AcdStore, rpc: Rpc) -> None:
        self.path = kamailio.seat_credentials_path(settings)
        self.factory = factory
        self.store = store
        self.rpc = rpc
        self.pushed: dict[str, str] | None = None  # what Kamailio holds, as far as we know
        self.answering = True  # whether Kamailio answered the last round (for the log)
        self.written: dict[str, str] | None = None
        self.rounds = 0

    def round(self) -> None:
        self.rounds += 1
        credentials = active_credentials(self.factory)
        if credentials != self.written:
            write_credentials(self.path, credentials)
            self.written = credentials
        try:
            self._push(credentials)
            registered = registered_extensions(self.rpc(["ul.dump"]))
        except (OSError, subprocess.SubprocessError) as exc:
            if self.answering:
                log.warning("registrar: Kamailio does not answer (%s)", exc)
            self.answering = False
            self.pushed = None  # everything again once it is back
        else:
            self.answering = True
            self._publish(set(credentials), registered)
        self.store.sweep()

    def _push(self, credentials: dict[str, str]) -> None:
        if self.rounds % FULL_PUSH_EVERY == 0:
            self.pushed = None
        before = self.pushed or {}
        commands = [
            f"htable.sets {HTABLE} s:{ext} s:{pw}" for ext, pw in credentials.items() if before.get(ext) != pw
        ]
        gone = set(before) - set(credentials) if self.pushed is not None else set()
        commands += [f"htable.delete {HTABLE} s:{ext}" for ext in sorted(gone)]
        if commands:
            self.rpc(commands)
            log.info("registrar: %d seat credential(s) pushed to Kamailio", len(commands))
        self.pushed = dict(credentials)

    def _publish(self, seats: set[str], registered: set[str]) -> None:
        known = {seat.extension: seat.registered for seat in self.store.seats()}
        for extension in sorted(seats | set(known)):
            now = extension in registered and extension in seats
            if known.get(extension) != now and (extension in known or now):
                log.info("registrar: seat %s %s", extension, "registered" if now else "unregistered")
                self.store.set_registered(extension, now)


def dialogs(listing: str) -> list[dict[str, str]]:
    """The dialogs in `kamcmd dlg.profile_list` output: their fields (h_entry, h_id, start_ts...)."""
    found: list[dict[str, str]] = []
    for line in listing.splitlines():
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        if key == "h_entry":
            found.append({})
        if found:
            found[-1].setdefault(key, value.strip())
    return found


class WorkerRestarts:
    """Ends, through Kamailio, the calls a worker's previous run left when it was killed.

    A killed worker sends no BYE: its caller and the seat phone it had rung stay in a silent call.
    Kamailio tracks each worker's calls in the dialog profile "worker" (its address); when a
    worker's heartbeat shows a new start time, the dialogs of that address that began before it
    are ended (`dlg.end_dlg`: BYE to both sides). A worker that is down and not restarted is
    Kamailio's own business (its probe, `event_route[dispatcher:dst-down]`); a heartbeat that is
    merely missing (Redis unreachable) ends nothing.
    """

    def __init__(self, client: Any, rpc: Rpc) -> None:
        self.client = client
        self.rpc = rpc
        self.started: dict[str, float] = {}  # worker name -> start time of the run we know

    def round(self) -> int:
        """Look at the heartbeats once; how many calls were ended."""
        from hotline import bus

        ended = 0
        for name, fields in bus.alive(self.client, "sip").items():
            started, address = float(fields.get("started") or 0), str(fields.get("address") or "")
            before = self.started.get(name)
            self.started[name] = started
            if before is not None and started > before and address:
                ended += self.end_calls(name, address, started)
        return ended

    def end_calls(self, name: str, address: str, before: float) -> int:
        listing = self.rpc([f"dlg.profile_list worker s:{address}"])
        ended = 0
        for dialog in dialogs(listing):
            if dialog.get("state") == "5":
                continue  # over already (BYE seen), kept a moment by Kamailio
            # `since` (a dialog variable set by the config, microseconds); Kamailio's own start_ts
            # is in whole seconds, too coarse for a worker killed and restarted within one.
            since = dialog.get("since")
            start = float(since) if since else float(dialog.get("start_ts") or 0) + 1  # surely older
            if dialog.get("h_entry") and dialog.get("h_id") and 0 < start < before:
                self.rpc([f"dlg.end_dlg {dialog['h_entry']} {dialog['h_id']}"])
                ended += 1
        if ended:
            log.warning("registrar: %s restarted; ended %d call(s) its previous run left", name, ended)
        return ended


def run(settings: Settings, stop: threading.Event | None = None) -> int:
    """`hotline registrar`: the loop above until SIGTERM/SIGINT (or `stop`)."""
    import signal

    from acd.history import ChangeRecorder
    from hotline import bus
    from hotline.db import make_engine, make_session_factory
    from ivr.callback_placer import CallbackPlacer

    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    engine = make_engine(settings.effective_database_url)
    factory = make_session_factory(engine)
    client = bus.connect(settings.effective_redis_url, timeout_s=2.0)
    store = AcdStore(client, on_change=ChangeRecorder(factory, bus.EventBus(client)))
    sync = RegistrarSync(settings, factory, store, kamcmd(settings))
    # One loop per Kamailio is also the right place to dial callback tasks (docs/acd.md).
    placer = CallbackPlacer(factory, store, client)
    restarts = WorkerRestarts(client, sync.rpc)
    log.info("registrar: seat credentials to %s, registrations to the ACD", sync.path)
    failing = False
    try:
        while not stop.is_set():
            try:
                sync.round()
                placer.round()
                restarts.round()
                failing = False
            except Exception as exc:
                # Once with the traceback; then one line a round until it works again.
                if failing:
                    log.warning("registrar: round failed again: %s", str(exc).splitlines()[0])
                else:
                    log.exception("registrar: round failed")
                failing = True
            stop.wait(ROUND_S)
    finally:
        client.close()
        engine.dispose()
    return 0
