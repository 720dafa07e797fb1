"""The state of each part, as `/healthz` and `hotline status` report it."""

from __future__ import annotations

import time
from typing import Any

import redis
from rq import Worker
from sqlalchemy import Engine, text

from hotline import bus, migrate


def check_database(engine: Engine) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision = migrate.current_revision(engine)
    except Exception as exc:  # any driver error means "down"; the message says which
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    head = migrate.head_revision(engine)
    return {
        "ok": revision == head,
        "backend": engine.dialect.name,
        "revision": revision,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        **({} if revision == head else {"error": f"schema at {revision}, code expects {head}"}),
    }


def check_redis(client: redis.Redis) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        client.ping()
        version = client.info("server").get("redis_version", "?")
    except (redis.RedisError, OSError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "version": version, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def check_sip(client: redis.Redis, expected_workers: int) -> dict[str, Any]:
    """SIP workers seen alive through their heartbeats, with their free call legs."""
    try:
        workers = bus.alive(client, "sip")
    except (redis.RedisError, OSError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300], "workers": {}}
    free = sum(int(w.get("free_legs", 0)) for w in workers.values())
    return {
        "ok": len(workers) > 0,
        "workers_up": len(workers),
        "workers_expected": expected_workers,
        "free_legs": free,
        "workers": dict(sorted(workers.items())),
    }


def check_jobs(client: redis.Redis, queues: tuple[str, ...]) -> dict[str, Any]:
    """RQ workers alive and jobs waiting per queue. `client` must not decode responses."""
    try:
        workers = Worker.all(connection=client)
        waiting = {name: int(client.llen(f"rq:queue:{name}")) for name in queues}
    except (redis.RedisError, OSError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": len(workers) > 0, "workers": len(workers), "waiting": waiting}
