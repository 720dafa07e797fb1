"""A CAPTCHA-free check on public forms: a signed form stamp and a honeypot field (no I/O).

The page carries a stamp `<issued>.<nonce>.<mac>` signed with the app's secret. A form sent back
in under 3 seconds was not filled in by a person; one older than an hour is refused so that a
harvested stamp is soon useless. The nonce names the submission, so a double submit of one form
finds the ticket it already made. Bots fill every field, people never see the honeypot.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets

MIN_FILL_S = 3.0
MAX_AGE_S = 3600.0
HONEYPOT = "website"


class Problem(enum.StrEnum):
    BAD = "bad"
    TOO_FAST = "too_fast"
    EXPIRED = "expired"
    HONEYPOT = "honeypot"


MESSAGES = {
    Problem.BAD: "表单校验信息缺失或无效，请在本页重新提交",
    Problem.TOO_FAST: f"提交过快（填写不足 {MIN_FILL_S:.0f} 秒），请核对内容后再次提交",
    Problem.EXPIRED: "页面打开已超过 1 小时，为保护您的信息，请核对内容后重新提交",
    Problem.HONEYPOT: "表单中隐藏的栏目被填写（可能是浏览器自动填充），请清除后重新提交",
}


class Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(MESSAGES[problem])
        self.problem = problem


def _mac(secret: str | bytes, issued: int, nonce: str) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"portal-form|{issued}|{nonce}".encode(), hashlib.sha256).hexdigest()[:32]


def issue(secret: str | bytes, now: float, nonce: str | None = None) -> str:
    """A stamp for a form shown at `now` (seconds since the epoch)."""
    nonce = nonce or secrets.token_hex(16)
    issued = int(now)
    return f"{issued}.{nonce}.{_mac(secret, issued, nonce)}"


def check(secret: str | bytes, stamp: str, now: float, honeypot: str = "") -> str:
    """The stamp's nonce if the form may be taken; `Refused` saying why otherwise."""
    if honeypot.strip():
        raise Refused(Problem.HONEYPOT)
    issued_text, _, rest = stamp.partition(".")
    nonce, _, mac = rest.partition(".")
    if not (issued_text.isdigit() and nonce and mac):
        raise Refused(Problem.BAD)
    issued = int(issued_text)
    if not hmac.compare_digest(_mac(secret, issued, nonce), mac):
        raise Refused(Problem.BAD)
    age = now - issued
    if age < MIN_FILL_S:
        raise Refused(Problem.TOO_FAST)
    if age > MAX_AGE_S:
        raise Refused(Problem.EXPIRED)
    return nonce
