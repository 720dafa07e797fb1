"""Work the pjsua2 thread must not wait for: one thread for SQL, one for Redis, results posted back.

One thread each keeps a call's writes in order (its CDR is opened before it is closed, a caller is
queued before it leaves the queue) and bounds what a worker asks of the database: a worker holds
at most four calls, so a single connection is enough. A slow or unreachable database delays the
records, never the calls: prompts, keys and timers keep running on the pjsua2 thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Post = Callable[[Callable[[], None]], None]


class Offload:
    def __init__(self, post: Post, name: str = "ivr") -> None:
        self._post = post
        self._sql = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-sql")
        self._redis = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-redis")

    def sql(
        self,
        work: Callable[[], T],
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Run `work` on the SQL thread; `on_done(result)` / `on_error(exc)` on the pjsua2 thread."""
        self._submit(self._sql, work, on_done, on_error)

    def redis(
        self,
        work: Callable[[], T],
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._submit(self._redis, work, on_done, on_error)

    def _submit(
        self,
        pool: ThreadPoolExecutor,
        work: Callable[[], T],
        on_done: Callable[[T], None] | None,
        on_error: Callable[[Exception], None] | None,
    ) -> None:
        try:
            pool.submit(self._run, work, on_done, on_error)
        except RuntimeError:
            log.warning("offload already shut down; dropping %s", getattr(work, "__name__", work))

    def _run(
        self,
        work: Callable[[], T],
        on_done: Callable[[T], None] | None,
        on_error: Callable[[Exception], None] | None,
    ) -> None:
        try:
            result = work()
        except Exception as exc:
            log.warning("background work failed: %s: %s", type(exc).__name__, exc, exc_info=on_error is None)
            if on_error is not None:
                self._post(_bind(on_error, exc))
            return
        if on_done is not None:
            self._post(_bind(on_done, result))

    def shutdown(self) -> None:
        """Finish what is queued (the records of the calls that just ended), then stop."""
        self._sql.shutdown(wait=True)
        self._redis.shutdown(wait=True)


def _bind(fn: Callable[[Any], None], value: Any) -> Callable[[], None]:
    return lambda: fn(value)
