"""The one typed settings object: defaults in code, then `hotline.toml`, then the environment.

Layers, later ones win:
1. the defaults declared on `Settings` below;
2. the TOML file named by `HOTLINE_CONFIG` (default `./hotline.toml` when it exists); a table
   `[sip] port = 5060` is the same key as the flat `sip_port = 5060`;
3. `HOTLINE_<KEY>` environment variables (e.g. `HOTLINE_SIP_PORT=5080`);
4. `DATABASE_URL` and `REDIS_URL`, the names every hosting platform uses.

An unknown key (in the file or as a `HOTLINE_*` variable) or a bad value raises `SettingsError`
whose message names the key and where it came from; the CLI prints it and exits with code 2.
This module is an infra leaf: it imports no project package.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

ENV_PREFIX = "HOTLINE_"
# Pub/sub channel on which the admin page tells the SIP workers that the IVR menu changed. Here
# because both sides may import this leaf and neither may import the other.
IVR_MENU_RELOAD_CHANNEL = "hotline:ivr:menu-reload"
# Environment variables with the prefix that are not settings keys.
_ENV_NOT_KEYS = {"HOTLINE_CONFIG"}


class SettingsError(Exception):
    """A setting is unknown or has a bad value; the message names it."""


class Settings(BaseModel):
    """Every knob of the hotline, flat and typed. Secrets are `SecretStr` and print masked."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # Where files live: the SQLite database, the embedded Redis, recordings, logs, run files.
    var_dir: Path = Path("var")
    database_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    secret_key: SecretStr | None = Field(
        default=None, description="Flask session key; generated under var/ when unset"
    )
    timezone: str = "Asia/Shanghai"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8000, ge=1, le=65535)
    web_threads: int = Field(default=100, ge=1, le=1000)
    # The citizens' side (外网: public portal, Open311) in its own process: `hotline web --public`.
    # Few threads: its requests are short, and more threads in one Python process only queue for
    # the interpreter lock (docs/benchmarks.md, the public look-up).
    public_web_host: str = "127.0.0.1"
    public_web_port: int = Field(default=8080, ge=1, le=65535)
    public_web_threads: int = Field(default=4, ge=1, le=1000)

    # The public SIP address: Kamailio's, or the single worker's when Kamailio is not installed.
    sip_host: str = "127.0.0.1"
    sip_port: int = Field(default=5060, ge=1, le=65535)
    # The pjsua2 worker pool behind Kamailio: 32 workers x 4 legs = 128 legs, so 64 callers, each
    # with a leg kept for its seat (DESIGN: a caller and its seat live in one worker).
    sip_workers: int = Field(default=32, ge=1, le=256)
    sip_worker_base_port: int = Field(default=5100, ge=1024, le=65000)
    rtp_base_port: int = Field(default=20000, ge=1024, le=65000)
    rtp_ports_per_worker: int = Field(default=40, ge=8, le=2000)
    kamailio_bin: str = Field(
        default="kamailio", description="name or path; empty to run one worker directly"
    )
    # A caller and the seat it is bridged to: a worker takes one caller per two legs.
    sip_legs_per_worker: int = Field(default=4, ge=2, le=4)

    # ACD: how long a seat's phone may ring before RONA (the seat goes not ready, the caller back
    # to the head of the queue), and the wrap-up (话后处理) time after a call before auto-ready.
    acd_ring_timeout_s: float = Field(default=15.0, gt=0, le=120)
    acd_wrap_up_s: float = Field(default=30.0, ge=0, le=3600)
    # How often a worker with waiting callers looks for ready seats without being woken.
    acd_dispatch_interval_s: float = Field(default=1.0, gt=0, le=60)
    # Nobody logged in with the queue's skill, or this many callers already waiting: the caller
    # hears that nobody can take the call and gets the fallback (leave a voicemail, be called
    # back, or a goodbye).
    acd_max_waiting: int = Field(default=50, ge=1, le=100_000)
    acd_fallback: Literal["voicemail", "callback", "goodbye"] = "voicemail"
    # The handle time a queue's expected wait is computed with until calls have been measured.
    acd_default_handle_s: float = Field(default=180.0, gt=0, le=3600)
    # Emergency transfers (紧急转接) an agent may make at once, joined to the call through the
    # trunk: 110 police, 119 fire, 120 ambulance, 122 traffic accidents. A centre with direct lines
    # to its dispatchers lists those numbers instead.
    emergency_numbers: tuple[str, ...] = ("110", "119", "120", "122")

    # Voice prompts (catalog.toml and audio/<lang>/); empty means voice-prompts/ beside the code.
    prompts_dir: Path | None = None
    # The IVR menu (TOML), managed in this file; empty means the one saved at /admin/menu
    # (var/ivr/menu.toml) if there is one, else the shipped default (ivr/menus/default.toml).
    ivr_menu: Path | None = None

    # A vosk model folder (e.g. vosk-model-small-cn-0.22); empty: no speech, DTMF only.
    vosk_model: Path | None = None
    # Live transcripts (智能填单) a host's speech service decodes at once; 0: 3 per CPU core (free-form
    # decoding costs about 0.15-0.25 CPU-s per audio-s). Legs above it are not transcribed live;
    # their recordings are kept all the same.
    speech_live_streams: int = Field(default=0, ge=0, le=1000)

    # Codecs the workers offer and accept, in order of preference (pjsua names); others are off.
    sip_codecs: tuple[str, ...] = ("PCMA/8000", "PCMU/8000", "G722/16000")
    # The trunk: Kamailio registers to this upstream softswitch/PBX/carrier (host[:port]; empty:
    # no trunk) with digest auth, so that 12345 calls are delivered here, and calls out through it.
    trunk_registrar: str = ""
    trunk_username: str = Field(default="", description="the account at the carrier; empty: trunk_number")
    trunk_password: SecretStr | None = None
    trunk_auth_username: str = Field(default="", description="when it differs from trunk_username")
    trunk_realm: str = Field(default="", description="empty: whatever realm the registrar challenges with")
    trunk_expires_s: int = Field(default=300, ge=30, le=86400)
    trunk_number: str = "12345"  # our Contact's user part: the number the carrier delivers to
    # More ip[:port] the carrier sends calls from (its SBCs), exempt from pike like the registrar.
    trunk_addresses: tuple[str, ...] = ()

    rq_queues: tuple[str, ...] = ("high", "default", "low")

    # Notifications outbox: a webhook (SMS gateway, department systems) and/or SMTP e-mail.
    # Unconfigured, messages wait in the outbox (shown at /outbox/) and fail after 48 h.
    notify_webhook_url: str = ""
    notify_webhook_secret: SecretStr | None = None
    notify_smtp_host: str = ""
    notify_smtp_port: int = Field(default=25, ge=1, le=65535)
    notify_smtp_security: Literal["none", "starttls", "ssl"] = "none"
    notify_smtp_username: str = ""
    notify_smtp_password: SecretStr | None = None
    notify_smtp_from: str = ""
    notify_centre_email: str = ""

    # `hotline serve` restarts a crashed child after this back-off, doubling up to the maximum.
    restart_backoff_s: float = Field(default=0.5, gt=0, le=60)
    restart_backoff_max_s: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("rq_queues", "sip_codecs", "trunk_addresses", mode="before")
    @classmethod
    def _split_queues(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    # Derived locations -----------------------------------------------------------------------
    @property
    def recordings_dir(self) -> Path:
        return self.var_dir / "recordings"

    @property
    def run_dir(self) -> Path:
        return self.var_dir / "run"

    @property
    def edited_ivr_menu(self) -> Path:
        """Where the administrators' menu editor (/admin/menu) writes the menu."""
        return self.var_dir / "ivr" / "menu.toml"

    def ivr_menu_file(self) -> Path | None:
        """The menu the workers run: `ivr_menu` if set, else the edited one if it exists; None
        means the shipped default (which only `ivr` knows)."""
        if self.ivr_menu is not None:
            return self.ivr_menu
        return self.edited_ivr_menu if self.edited_ivr_menu.is_file() else None

    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.var_dir / 'hotline.db').resolve()}"

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def redis_socket(self) -> Path:
        return (self.run_dir / "redis.sock").resolve()

    @property
    def effective_redis_url(self) -> str:
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        return f"unix://{self.redis_socket}"

    def masked(self) -> dict[str, Any]:
        """The effective settings for display, with secrets and URL passwords masked."""
        shown: dict[str, Any] = {}
        for key in type(self).model_fields:
            value = getattr(self, key)
            if isinstance(value, SecretStr):
                value = _mask_url(value.get_secret_value()) if key.endswith("_url") else "********"
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            shown[key] = value
        shown["database_url"] = _mask_url(self.effective_database_url)
        shown["redis_url"] = _mask_url(self.effective_redis_url)
        return shown


def _mask_url(url: str) -> str:
    """`postgresql://u:secret@h/db` -> `postgresql://u:***@h/db`."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, colon, _password = creds.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


def load_settings(environ: Mapping[str, str] | None = None, config_file: Path | None = None) -> Settings:
    """Build the settings from the layers; raise `SettingsError` naming the first bad key."""
    env = os.environ if environ is None else environ
    known = set(Settings.model_fields)
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}

    path = config_file or Path(env.get("HOTLINE_CONFIG", "hotline.toml"))
    if path.exists():
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"config file {path}: {exc}") from exc
        for key, value in _flatten(table).items():
            if key not in known:
                raise SettingsError(f"unknown setting '{key}' in {path}")
            values[key] = value
            origin[key] = str(path)
    elif "HOTLINE_CONFIG" in env:
        raise SettingsError(f"config file {path} (HOTLINE_CONFIG) does not exist")

    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in _ENV_NOT_KEYS:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in known:
            raise SettingsError(f"unknown setting '{key}' ({name})")
        values[key] = value
        origin[key] = name
    for name, key in (("DATABASE_URL", "database_url"), ("REDIS_URL", "redis_url")):
        if env.get(name):
            values[key] = env[name]
            origin[key] = name

    try:
        return Settings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else "?"
        where = origin.get(key, "default")
        raise SettingsError(
            f"bad setting '{key}' ({where}): {error['msg']}; got {error.get('input')!r}"
        ) from exc
