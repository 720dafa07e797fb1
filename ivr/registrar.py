"""Seat phones at the Kamailio registrar: passwords in from the `seats` table, registrations out to the ACD.

`hotline registrar` runs one loop beside Kamailio (the supervisor starts it with the SIP edge).
Every second it:
- reads the active seats' extensions and SIP passwords (SQL) and, when they differ from what
  Kamailio was last given, pushes the difference into its `seatpw` htable over the control socket
  (`kamcmd htable.sets` / `htable.delete`, the secrets on kamcmd's stdin, never on a command line)
  and rewrites the file Kamailio loads at start (mode 0600), so a restarted Kamailio knows every
  seat before the first REGISTER. Reading the table each second, instead of being told when a seat
  is saved, means any writer (the admin page, a restore, the CLI) reaches Kamailio within a second;
- does the same with the numbers the IVR menu in effect transfers callers to (`xfer` htable,
  `ivr.trunk.transfer_numbers`, the menu file read again when it changes): a menu saved at
  /admin/menu lets its new transfer numbers out through the trunk, and stops the removed ones,
  without a restart of Kamailio;
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
from ivr import kamailio, trunk

log = logging.getLogger(__name__)

ROUND_S = 1.0
FULL_PUSH_EVERY = 60  # rounds: push every password again now and then, whatever we think Kamailio has
HTABLE = "seatpw"
XFER = "xfer"
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


def transfer_entries(numbers: list[str]) -> dict[str, str]:
    """The `xfer` htable for these numbers: each with and without a leading + (as dialled)."""
    entries = {}
    for number in numbers:
        bare = number.lstrip("+")
        entries[bare] = entries["+" + bare] = "1"
    return entries


def write_tables(path: Path, tables: dict[str, dict[str, str]]) -> None:
    """The htables' content as config Kamailio runs at start (`event_route[htable:mod-init]`)."""
    lines = ["# Written by ivr/registrar.py from the seats table and the IVR menu; do not edit."]
    rows = [(table, k, v) for table, entries in tables.items() for k, v in sorted(entries.items())]
    if rows:  # an empty route block is a syntax error: Kamailio would not start
        lines.append("event_route[htable:mod-init] {")
        lines += [f'\t$sht({table}=>{key}) = "{value}";' for table, key, value in rows]
        lines.append("}")
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    tmp.replace(path)


def write_initial(settings: Settings) -> None:
    """The tables' file before Kamailio starts; an unreachable database only delays the seats."""
    from hotline.db import make_engine, make_session_factory

    tables = {XFER: transfer_entries(trunk.transfer_numbers(settings))}
    engine = make_engine(settings.effective_database_url)
    try:
        tables[HTABLE] = active_credentials(make_session_factory(engine))
    except Exception as exc:  # the registrar loop writes them as soon as the database answers
        log.warning("registrar: seat credentials not written before Kamailio starts: %s", exc)
    finally:
        engine.dispose()
    write_tables(kamailio.seat_credentials_path(settings), tables)


class HtableMirror:
    """What one of Kamailio's htables holds, as far as this loop knows; `push` sends the difference."""

    def __init__(self, name: str, rpc: Rpc) -> None:
        self.name = name
        self.rpc = rpc
        self.pushed: dict[str, str] | None = None  # None: unknown, everything goes again

    def push(self, entries: dict[str, str], everything: bool = False) -> int:
        if everything:
            self.pushed = None
        before = self.pushed or {}
        commands = [
            f"htable.sets {self.name} s:{key} s:{value}"
            for key, value in entries.items()
            if before.get(key) != value
        ]
        gone = set(before) - set(entries) if self.pushed is not None else set()
        commands += [f"htable.delete {self.name} s:{key}" for key in sorted(gone)]
        if commands:
            self.rpc(commands)
        self.pushed = dict(entries)
        return len(commands)

    def forget(self) -> None:
        self.pushed = None


class MenuNumbers:
    """The menu in effect's transfer numbers, read again only when its file changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._seen: tuple[Path | None, int, int, int] | None = None
        self._numbers: list[str] = []

    def __call__(self) -> list[str]:
        path = self.settings.ivr_menu_file()
        try:
            # The admin page saves by a rename: a new inode, whatever the clock's resolution.
            stat = path.stat() if path is not None else None
            seen = (path, *((stat.st_ino, stat.st_mtime_ns, stat.st_size) if stat else (0, 0, 0)))
        except OSError:
            seen = (path, -1, -1, -1)
        if seen != self._seen:
            self._numbers, self._seen = trunk.transfer_numbers(self.settings), seen
        return self._numbers


class RegistrarSync:
    def __init__(self, settings: Settings, factory: sessionmaker[Session], store: AcdStore, rpc: Rpc) -> None:
        self.path = kamailio.seat_credentials_path(settings)
        self.factory = factory
        self.store = store
        self.rpc = rpc
        self.transfer_numbers = MenuNumbers(settings)
        self.mirrors = {HTABLE: HtableMirror(HTABLE, rpc), XFER: HtableMirror(XFER, rpc)}
        self.answering = True  # whether Kamailio answered the last round (for the log)
        self.written: dict[str, dict[str, str]] | None = None
        self.rounds = 0

    def round(self) -> None:
        self.rounds += 1
        credentials = active_credentials(self.factory)
        tables = {HTABLE: credentials, XFER: transfer_entries(self.transfer_numbers())}
        if tables != self.written:
            write_tables(self.path, tables)
            self.written = tables
        try:
            self._push(tables)
            registered = registered_extensions(self.rpc(["ul.dump"]))
        except (OSError, subprocess.SubprocessError) as exc:
            if self.answering:
                log.warning("registrar: Kamailio does not answer (%s)", exc)
            self.answering = False
            for mirror in self.mirrors.values():
                mirror.forget()  # everything again once it is back
        else:
            self.answering = True
            self._publish(set(credentials), registered)
        self.store.sweep()

    def _push(self, tables: dict[str, dict[str, str]]) -> None:
        # Now and then everything again, whatever we think Kamailio has.
        everything = self.rounds % FULL_PUSH_EVERY == 0
        for name, mirror in self.mirrors.items():
            changed = mirror.push(tables[name], everything)
            if changed:
                log.info("registrar: %d change(s) to Kamailio's %s table pushed", changed, name)

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
