"""The IVR menu files the admin page edits: var/ivr/menu.toml and its last earlier versions.

No Flask and no `ivr` here, only files. A save replaces menu.toml atomically (a temporary file in
the same folder, fsynced, renamed over it), so a worker that reloads at that moment reads the old
menu or the new one, never half of one. The version it replaces is kept first as
`menu.toml.<UTC time it was saved>`; the last `KEEP_VERSIONS` are kept. Saves take a lock on the
folder and compare the checksum of the menu the editor started from, so of two administrators
editing at once the second is told instead of silently undoing the first one's change.
"""

from __future__ import annotations

import datetime as dt
import difflib
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KEEP_VERSIONS = 10
_STAMP = "%Y%m%dT%H%M%S%fZ"
VERSION_NAME = re.compile(r"^menu\.toml\.(\d{8}T\d{12}Z)$")


class StaleMenu(Exception):
    """The menu changed since the editor loaded it (another administrator saved meanwhile)."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Version:
    name: str  # menu.toml.<stamp>
    saved_at: dt.datetime  # UTC


@dataclass(frozen=True)
class Saved:
    old_sha256: str
    new_sha256: str
    version: str  # the name the new menu will be kept under once replaced (its save time)
    kept: str  # the earlier version's file name ("" when there was none)
    added: int  # lines
    removed: int


class MenuFiles:
    def __init__(self, target: Path) -> None:
        self.target = target  # var/ivr/menu.toml
        self.folder = target.parent

    def read(self) -> str | None:
        return self.target.read_text(encoding="utf-8") if self.target.is_file() else None

    def current_version(self) -> str:
        """The name menu.toml will be kept under when it is replaced ("" when there is none)."""
        return self._version_name(self._saved_at()) if self.target.is_file() else ""

    def _saved_at(self) -> dt.datetime:
        # Its mtime: menu.toml is written by a rename and never modified in place.
        return dt.datetime.fromtimestamp(self.target.stat().st_mtime, dt.UTC)

    def _version_name(self, saved_at: dt.datetime) -> str:
        return f"{self.target.name}.{saved_at.strftime(_STAMP)}"

    def versions(self) -> list[Version]:
        """Earlier versions, newest first."""
        found = []
        for path in self.folder.glob(f"{self.target.name}.*") if self.folder.is_dir() else []:
            match = VERSION_NAME.match(path.name)
            if match:
                saved_at = dt.datetime.strptime(match.group(1), _STAMP).replace(tzinfo=dt.UTC)
                found.append(Version(path.name, saved_at))
        return sorted(found, key=lambda v: v.name, reverse=True)

    def read_version(self, name: str) -> str | None:
        if not VERSION_NAME.match(name):  # also keeps the name inside the folder
            return None
        path = self.folder / name
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def save(self, text: str, *, base_text: str) -> Saved:
        """Write `text` as the menu if the menu in effect is still `base_text`; else `StaleMenu`.

        `base_text` is what the editor showed (the shipped default when no menu was saved yet).
        """
        with self._locked():
            current = self.read()
            if sha256(current if current is not None else base_text) != sha256(base_text):
                raise StaleMenu()
            kept = self._keep_current() if current is not None else ""
            self._replace(text)
            self._prune()
            version = self.current_version()
        diff = list(difflib.ndiff(base_text.splitlines(), text.splitlines()))
        return Saved(
            old_sha256=sha256(base_text),
            new_sha256=sha256(text),
            version=version,
            kept=kept,
            added=sum(1 for line in diff if line.startswith("+ ")),
            removed=sum(1 for line in diff if line.startswith("- ")),
        )

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / ".menu.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _keep_current(self) -> str:
        saved_at = self._saved_at()
        while (self.folder / self._version_name(saved_at)).exists():
            saved_at += dt.timedelta(microseconds=1)  # a coarse clock: two saves in one tick
        keep = self.folder / self._version_name(saved_at)
        shutil.copy2(self.target, keep)  # copy2 keeps the mtime, i.e. the time it was saved
        return keep.name

    def _replace(self, text: str) -> None:
        partial = self.folder / f".{self.target.name}.{os.getpid()}.tmp"
        with partial.open("w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(self.target)
        folder = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a crash
        finally:
            os.close(folder)

    def _prune(self) -> None:
        for old in self.versions()[KEEP_VERSIONS:]:
            (self.folder / old.name).unlink(missing_ok=True)
