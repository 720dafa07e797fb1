"""The trunk: Kamailio registers the hotline to an upstream softswitch, PBX or carrier (`uac_reg`).

With `trunk_registrar` set, Kamailio keeps one registration there (digest auth, refreshed before it
expires, retried after a failure), with the Contact `sip:<trunk_number>@<public SIP address>`: the
carrier delivers 12345 calls to that Contact, and Kamailio hands them to the workers like any
other call. Workers' calls to numbers that are not seat extensions go out through the trunk,
answering the carrier's 401/407 with the same credentials (`uac_auth`). The carrier's addresses
(the registrar's, and `trunk_addresses`) are exempt from `pike`: one trunk carries every call.

`uac_reg` reads its accounts from a database; a `db_text` folder under Kamailio's run dir holds
the one row, written here at each render (mode 0600: it holds the password, as does the config).
"""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from hotline.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_PORT = 5060
# db_text's table definition of `uacreg` (version 5, Kamailio 5.6); db_text reads an empty value as
# NULL, so the optional columns allow it.
_UACREG_COLUMNS = (
    "id(int,auto) l_uuid(string) l_username(string) l_domain(string) r_username(string) "
    "r_domain(string) realm(string,null) auth_username(string) auth_password(string) "
    "auth_ha1(string,null) auth_proxy(string) expires(int) flags(int) reg_delay(int) "
    "contact_addr(string,null) socket(string,null)"
)
_UACREG_VERSION = 5


class TrunkError(ValueError):
    """The trunk settings cannot work (an unresolvable registrar, a bad address)."""


@dataclass(frozen=True)
class Trunk:
    """What the Kamailio template needs about the trunk."""

    host: str  # the registrar's host as configured (also the domain registered in)
    port: int
    proxy: str  # host:port, where registrations and outgoing calls are sent
    number: str  # our user part on the trunk (the Contact's)
    username: str
    auth_username: str
    password: str
    realm: str
    expires_s: int
    db_dir: Path
    peers: tuple[tuple[str, int | None], ...]  # (ip, port or None for any) exempt from pike

    @property
    def refresh_s(self) -> int:
        """How often uac_reg looks for registrations to renew: well inside their lifetime."""
        return max(5, min(60, self.expires_s // 3))


def split_address(text: str) -> tuple[str, int | None]:
    """ "host", "host:port", "[v6]:port" -> (host, port or None)."""
    text = text.strip().removeprefix("sip:")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host:
        raise TrunkError(f"no host in trunk address {text!r}")
    try:
        return host, int(port) if port else None
    except ValueError as exc:
        raise TrunkError(f"bad port in trunk address {text!r}") from exc


def _resolve(host: str) -> str | None:
    # pike's exemption compares source addresses as text: it needs the IP.
    try:
        return str(socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)[0][4][0])
    except socket.gaierror as exc:
        # DNS down at start must not keep 12345 from answering: Kamailio resolves the registrar
        # itself when it registers; only the pike exemption of this host is missing until a restart.
        log.warning("trunk host %r does not resolve (%s): it is not exempt from pike", host, exc)
        return None


def from_settings(settings: Settings, db_dir: Path) -> Trunk | None:
    """The trunk the settings describe, or None without `trunk_registrar`."""
    if not settings.trunk_registrar.strip():
        return None
    host, port = split_address(settings.trunk_registrar)
    port = port or DEFAULT_PORT
    wanted: list[tuple[str, int | None]] = [(host, port)]
    wanted += [split_address(extra) for extra in settings.trunk_addresses]
    peers = [(ip, peer_port) for peer_host, peer_port in wanted if (ip := _resolve(peer_host)) is not None]
    password = settings.trunk_password.get_secret_value() if settings.trunk_password else ""
    username = settings.trunk_username or settings.trunk_number
    return Trunk(
        host=host,
        port=port,
        proxy=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        number=settings.trunk_number,
        username=username,
        auth_username=settings.trunk_auth_username or username,
        password=password,
        realm=settings.trunk_realm,
        expires_s=settings.trunk_expires_s,
        db_dir=db_dir,
        peers=tuple(dict.fromkeys(peers)),
    )


def write_db(trunk: Trunk, contact_addr: str) -> None:
    """The `uacreg` table in db_text form: one account, registering `trunk.number` upstream."""
    trunk.db_dir.mkdir(parents=True, exist_ok=True)
    values = [
        "1",
        trunk.number,  # l_uuid: the Contact's user part, so calls arrive for 12345
        trunk.number,
        trunk.host,
        trunk.username,
        trunk.host,
        trunk.realm,
        trunk.auth_username,
        trunk.password,
        "",
        f"sip:{trunk.proxy}",
        str(trunk.expires_s),
        "0",
        "0",
        contact_addr,
        "",
    ]
    if any("\n" in v or "\r" in v for v in values):
        raise TrunkError("a trunk setting may not contain a line break")
    row = ":".join(_escape(v) for v in values)
    version = f"table_name(string) table_version(int)\nuacreg:{_UACREG_VERSION}\n"
    _write_private(trunk.db_dir / "version", version)
    _write_private(trunk.db_dir / "uacreg", f"{_UACREG_COLUMNS}\n{row}\n")


def _escape(value: str) -> str:
    # db_text separates columns with ':' and reads '\\:' as a colon (URIs, IPv6, passwords).
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    tmp.replace(path)


RETRY_S = 30  # after a failed registration
RING_LIMIT_MS = 130_000  # longer than any ring time a worker asks for; it cancels before this


def contact_host(settings: Settings, trunk: Trunk) -> str:
    """Where the carrier reaches us: the SIP address, or for a wildcard the way out to the registrar."""
    host = settings.sip_host
    if host in ("0.0.0.0", "::", "[::]", ""):
        if not trunk.peers:
            raise TrunkError("with a wildcard sip_host the registrar must resolve (or set sip_host)")
        family = socket.AF_INET6 if ":" in trunk.peers[0][0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((trunk.peers[0][0], trunk.port))  # no packet is sent: it picks a route
            host = str(probe.getsockname()[0])
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def transfer_numbers(settings: Settings) -> list[str]:
    """The numbers the configured IVR menu transfers callers to: the only ones a caller's phone may
    reach through the trunk (anything else would let anyone call anywhere at the hotline's cost)."""
    from ivr.menu import DEFAULT_MENU, ActionKind, MenuError, load_menu

    try:
        menu = load_menu(settings.ivr_menu_file() or DEFAULT_MENU)
    except (OSError, MenuError):
        menu = load_menu(DEFAULT_MENU)  # what the workers run then, too
    numbers = {
        action.number
        for node in menu.nodes.values()
        for action in (*node.options.values(), node.fallback)
        if action.kind is ActionKind.TRANSFER and re.fullmatch(r"\+?[0-9]{2,20}", action.number)
    }
    return sorted(numbers)


def template_vars(settings: Settings, runtime_dir: Path) -> dict[str, object]:
    """The Kamailio template's trunk variables; writes the uac_reg account when there is a trunk."""
    trunk = from_settings(settings, runtime_dir / "trunk-db")
    if trunk is None:
        return {"trunk": None}
    for value in (trunk.auth_username, trunk.password, trunk.realm, trunk.number):
        if any(c in value for c in '"\\\n\r'):
            raise TrunkError("trunk settings may not contain quotes, backslashes or line breaks")
    contact = f"{contact_host(settings, trunk)}:{settings.sip_port}"
    write_db(trunk, contact)
    return {
        "trunk": trunk,
        "trunk_contact": contact,
        "trunk_retry_s": RETRY_S,
        "trunk_ring_limit_ms": RING_LIMIT_MS,
    }
