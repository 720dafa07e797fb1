"""`hotline web`: the Flask-SocketIO app under gunicorn (one process, many threads).

Flask-SocketIO in `threading` mode wants one worker process with many threads (sticky sessions
across processes need a load balancer, so a second web node is a second `hotline web`).
`hotline web --public` serves the citizens' side the same way with a few threads and no Socket.IO.
"""

from __future__ import annotations

import gc
import threading
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from hotline.settings import Settings
from hotline.web import create_app, create_public_app, start_relay


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def run(settings: Settings, public: bool = False) -> int:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    if public:
        bind = f"{settings.public_web_host}:{settings.public_web_port}"
        app = create_public_app(settings)
        return _serve(app, settings, "hotline-public-web", bind, settings.public_web_threads)
    app = create_app(settings)
    stop = threading.Event()
    bind = f"{settings.web_host}:{settings.web_port}"
    return _serve(
        app,
        settings,
        "hotline-web",
        bind,
        settings.web_threads,
        post_worker_init=lambda _worker: start_relay(app, stop),
        worker_exit=lambda _arbiter, _worker: stop.set(),
    )


def _serve(app: Flask, settings: Settings, name: str, bind: str, threads: int, **hooks: Any) -> int:
    options = {
        "bind": bind,
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads,
        # Long-polling and websocket connections stay open; don't let gunicorn kill them.
        "timeout": 0,
        "graceful_timeout": 5,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "control_socket": str((settings.run_dir / f"{name}.ctl").resolve()),
        "proc_name": name,
        **hooks,
    }
    # The app, its models and templates live as long as the process: moved out of the collector's
    # sight, a full collection no longer walks them in the middle of a request (the public
    # look-up's p99 on SQLite: 29-57 ms before, 22-27 ms after; docs/benchmarks.md). Before
    # gunicorn forks its worker, as the gc module's documentation advises.
    gc.freeze()
    _Gunicorn(app, options).run()
    return 0
