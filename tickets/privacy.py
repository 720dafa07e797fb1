"""What department staff may see of the reporter (no I/O): masked, full for a callback, or hidden.

A confidential (保密) ticket never shows the reporter to a department, even when a callback is
needed: the centre calls back then. Otherwise the department sees a masked phone (138****0000)
and name (张*) unless it must call the citizen back itself.
"""

from __future__ import annotations

from dataclasses import dataclass

HIDDEN = "（保密）"


def mask_phone(phone: str) -> str:
    """`13800000000` -> `138****0000`; short numbers are hidden entirely."""
    digits = phone.strip()
    if not digits:
        return ""
    if len(digits) < 7:
        return "****"
    return f"{digits[:3]}****{digits[-4:]}"


def mask_name(name: str) -> str:
    """`张三` -> `张*`, `欧阳娜娜` -> `欧***`."""
    name = name.strip()
    return f"{name[0]}{'*' * max(len(name) - 1, 1)}" if name else ""


@dataclass(frozen=True)
class Reporter:
    name: str
    phone: str
    masked: bool
    hidden: bool


def reporter_for_department(name: str, phone: str, confidential: bool, callback_required: bool) -> Reporter:
    if confidential:
        return Reporter(HIDDEN, HIDDEN, masked=True, hidden=True)
    if callback_required:
        return Reporter(name, phone, masked=False, hidden=False)
    return Reporter(mask_name(name), mask_phone(phone), masked=True, hidden=False)
