"""Collecting a DTMF entry: one key, or several ended by `#`, a full length or an inter-digit pause.

No I/O and no timers: the call flow feeds keys in and tells the collector when the inter-digit
timer ran out; the collector says when the entry is complete.
"""

from __future__ import annotations

from collections.abc import Iterable

TERMINATOR = "#"


class DigitCollector:
    def __init__(self, max_digits: int, options: Iterable[str] = (), terminator: str = TERMINATOR) -> None:
        self.max_digits = max(1, max_digits)
        self.options = frozenset(options)
        self.terminator = terminator
        self.digits = ""

    def feed(self, digit: str) -> str | None:
        """The complete entry once this key completes it, else None (keep collecting)."""
        if digit == self.terminator:
            if self.digits:
                return self._take()
            # A lone `#`: an option of its own, or an (invalid) empty entry the menu reports.
            return self.terminator
        self.digits += digit
        if len(self.digits) >= self.max_digits or self._unambiguous():
            return self._take()
        return None

    def flush(self) -> str:
        """The inter-digit timeout: whatever was keyed so far ("" if nothing)."""
        return self._take()

    @property
    def started(self) -> bool:
        return bool(self.digits)

    def _unambiguous(self) -> bool:
        # "1" completes at once when it is an option and no longer option starts with it, so a
        # caller is not kept waiting for the inter-digit timeout of a multi-digit menu.
        if self.digits not in self.options:
            return False
        return not any(len(o) > len(self.digits) and o.startswith(self.digits) for o in self.options)

    def _take(self) -> str:
        entry, self.digits = self.digits, ""
        return entry
