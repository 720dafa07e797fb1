"""`hotline worker` runs jobs enqueued by dotted name, scheduled ones included."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
from rq import Queue
from rq.job import JobStatus

from hotline import bus, health
from tests.helpers import wait_until


def test_the_worker_runs_queued_and_scheduled_jobs_and_shows_in_health(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path, hotline_worker: Any
) -> None:
    _worker, log = hotline_worker(REDIS_URL=redis_url, HOTLINE_VAR_DIR=str(tmp_path / "var"))
    rq_client = bus.connect(redis_url, decode_responses=False)
    queue = Queue("default", connection=rq_client)
    marker = tmp_path / "ran"
    now_job = queue.enqueue("pathlib.Path.touch", marker)
    later_job = queue.enqueue_in(timedelta(seconds=1), "os.path.exists", str(marker))
    assert wait_until(lambda: now_job.get_status(refresh=True) == JobStatus.FINISHED, timeout=30), (
        log.read_text()
    )
    assert marker.exists()
    assert wait_until(lambda: later_job.get_status(refresh=True) == JobStatus.FINISHED, timeout=30)
    assert later_job.return_value() is True
    jobs = health.check_jobs(rq_client, ("high", "default", "low"))
    assert jobs["ok"] and jobs["workers"] == 1 and jobs["waiting"]["default"] == 0
