"""The web application factory: Flask, Socket.IO, the blueprints, and the event relay.

`create_app()` builds the app without side effects beyond opening connections; the relay thread
that follows the event bus and emits to Socket.IO rooms starts with `start_relay()`, called by
`hotline web` (and by tests that want it), never at import.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, redirect, url_for
from flask_login import AnonymousUserMixin, current_user
from flask_socketio import SocketIO, join_room
from flask_wtf.csrf import CSRFError, CSRFProtect, validate_csrf
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError

from acd.history import ChangeRecorder
from acd.store import AcdStore
from agent_desk import BLUEPRINTS as DESK_BLUEPRINTS
from hotline import auth, bus, health
from hotline.db import make_engine, make_session_factory
from hotline.settings import Settings, load_settings
from recordings import playback
from tickets import dept_api, dept_portal, open311, outbox_views, portal

# A strict policy: no inline script or style, nothing from another origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)

log = logging.getLogger(__name__)

# The web's connection pool: no pre-ping (a round trip on every checkout, so on every request:
# a sixth of the public look-up's wall time on PostgreSQL, docs/benchmarks.md). A pooled connection
# the server dropped (PostgreSQL restarted, an idle timeout on the way) fails the request that
# meets it: SQLAlchemy then discards every connection opened before that moment, and
# `disconnected` below answers 503 with Retry-After, so the next request runs on a new one.
# Recycling after 30 minutes keeps connections younger than common idle timeouts.
ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": False, "pool_recycle": 1800}


def secret_key(settings: Settings) -> str:
    """The configured key, or one generated once and kept under var/ (mode 600)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.var_dir / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip()


def _base_app(settings: Settings) -> Flask:
    """What both web apps share: config, connections, CSRF, security headers, error pages."""
    here = Path(__file__).parent
    app = Flask(__name__, template_folder=str(here / "templates"), static_folder=str(here / "static"))
    app.config.update(
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # One shift, then log in again.
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        JSON_AS_ASCII=False,
    )
    engine = make_engine(settings.effective_database_url, **ENGINE_OPTIONS)
    redis_client = bus.connect(settings.effective_redis_url)
    # RQ keeps pickled payloads: its client must not decode responses.
    rq_client = bus.connect(settings.effective_redis_url, decode_responses=False)
    app.extensions["hotline"] = {
        "settings": settings,
        "engine": engine,
        "db": make_session_factory(engine),
        "redis": redis_client,
        "rq_redis": rq_client,
        "bus": bus.EventBus(redis_client),
    }

    CSRFProtect(app)

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.errorhandler(StaleDataError)
    def stale(_error: StaleDataError) -> Any:
        # Someone changed the record between our read and our write (optimistic locking).
        return jsonify(error="该记录刚被他人更新，请刷新后重试"), 409

    @app.errorhandler(DBAPIError)
    def disconnected(error: DBAPIError) -> Any:
        if not error.connection_invalidated:
            raise error  # a real error: the usual 500
        log.warning("database connection lost (%s); the pool reconnects", error.orig)
        response = jsonify(error="数据库连接刚刚中断，已重新连接，请重试")
        response.headers["Retry-After"] = "1"
        return response, 503

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> Any:
        return jsonify(error="表单已过期或来源不明，请刷新页面后重试", detail=error.description), 400

    return app


def _limiter_storage(settings: Settings) -> str:
    return settings.effective_redis_url.replace("unix://", "redis+unix://", 1)


def create_app(settings: Settings | None = None) -> Flask:
    """The whole web: agent desk, wallboard, admin, department portal and API, public portal."""
    settings = settings or load_settings()
    app = _base_app(settings)
    ext = app.extensions["hotline"]
    # Seat changes made from the desk go to the SQL history and the screens like any other.
    ext["acd"] = AcdStore(ext["redis"], on_change=ChangeRecorder(ext["db"], ext["bus"]))

    def checks() -> dict[str, dict[str, Any]]:
        return {
            "database": health.check_database(ext["engine"]),
            "redis": health.check_redis(ext["redis"]),
            "sip": health.check_sip(ext["redis"], settings.sip_workers),
            "jobs": health.check_jobs(ext["rq_redis"], settings.rq_queues),
        }

    # Blueprints show the state too, without importing the composition root.
    ext["health"] = checks

    @app.get("/healthz")
    def healthz() -> Any:
        checks = ext["health"]()
        # The web answers while SIP is down (agents still work tickets), but says so.
        core_ok = checks["database"]["ok"] and checks["redis"]["ok"]
        parts_ok = checks["sip"]["ok"] and checks["jobs"]["ok"]
        status = "ok" if core_ok and parts_ok else ("degraded" if core_ok else "down")
        return jsonify(status=status, **checks), (200 if core_ok else 503)

    auth.init_auth(app, ext["db"], _limiter_storage(settings))
    for blueprint in DESK_BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.register_blueprint(dept_portal.bp)
    app.register_blueprint(dept_api.bp)
    app.register_blueprint(open311.bp)
    app.register_blueprint(portal.bp)
    app.register_blueprint(outbox_views.bp)
    app.register_blueprint(playback.bp)
    # threading mode always: if eventlet or gevent is merely installed Flask-SocketIO picks it.
    socketio = SocketIO(app=None, async_mode="threading")
    socketio.init_app(app)
    app.extensions["hotline"]["socketio"] = socketio

    @socketio.on("connect")  # type: ignore[untyped-decorator]
    def on_connect(auth_data: dict[str, Any] | None = None) -> bool:
        # Same-origin is Socket.IO's default check; on top: a logged-in user and the CSRF token.
        if not current_user.is_authenticated:
            return False
        try:
            validate_csrf((auth_data or {}).get("csrf", ""))
        except Exception:  # wtforms' ValidationError and friends: any failure refuses
            return False
        join_room(f"user:{current_user.id}")
        join_room(f"role:{current_user.role.value}")
        if current_user.department_id is not None:
            join_room(f"department:{current_user.department_id}")
        return True

    return app


def create_public_app(settings: Settings | None = None) -> Flask:
    """The citizens' side (外网): the public portal and Open311, nothing that needs a login.

    It runs as its own process (`hotline web --public`, a few threads, no Socket.IO), so it can
    face the internet while the desk and the department portal stay inside, and so citizens'
    look-ups are not slowed by the desk's many Socket.IO threads (docs/benchmarks.md).
    """
    settings = settings or load_settings()
    app = _base_app(settings)
    # Its own cookie: a staff session of the same host is neither read nor overwritten here.
    app.config["SESSION_COOKIE_NAME"] = "hotline_public"
    ext = app.extensions["hotline"]
    auth.init_limiter(app, _limiter_storage(settings))

    @app.context_processor
    def nobody_logged_in() -> dict[str, Any]:
        return {"current_user": AnonymousUserMixin()}  # the shared layout asks

    @app.get("/healthz")
    def healthz() -> Any:
        # Only up or down: the internal parts' state is not the internet's business.
        core_ok = health.check_database(ext["engine"])["ok"] and health.check_redis(ext["redis"])["ok"]
        return jsonify(status="ok" if core_ok else "down"), (200 if core_ok else 503)

    @app.get("/")
    def home() -> Any:
        return redirect(url_for("portal.index"))

    app.register_blueprint(portal.bp)
    app.register_blueprint(open311.bp)
    return app


def close_app(app: Flask) -> None:
    """Release the app's database pool and Redis connections (tests; process exit does it too)."""
    ext = app.extensions["hotline"]
    ext["engine"].dispose()
    ext["redis"].close()
    ext["rq_redis"].close()


def start_relay(app: Flask, stop: threading.Event | None = None) -> threading.Thread:
    """Follow the event bus and emit each event to the Socket.IO rooms it names."""
    event_bus: bus.EventBus = app.extensions["hotline"]["bus"]
    socketio: SocketIO = app.extensions["hotline"]["socketio"]
    stop = stop or threading.Event()

    def relay() -> None:
        for event in event_bus.follow(stop=stop.is_set):
            payload = {"type": event.type, "at": event.at, "data": dict(event.data)}
            for room in event.rooms:
                socketio.emit(event.type, payload, to=room)

    thread = threading.Thread(target=relay, name="event-relay", daemon=True)
    thread.start()
    return thread
