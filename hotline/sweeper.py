"""Re-queue work whose job was lost: the durable record is SQL, Redis only carries the jobs.

A voicemail's ticket is written to SQL before its transcription job is queued; if Redis lost
the job (restarted without its data, or down when the softswitch tried), the ticket still says
"pending" and this sweep queues it again. Job ids are derived from the ticket, so a job that is
still queued or running is not duplicated.
"""

from __future__ import annotations

import logging
import threading

import redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy.orm import Session, sessionmaker

from tickets.jobs import pending_voicemails

log = logging.getLogger(__name__)

ALIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
RETRY = Retry(max=5, interval=[10, 30, 60, 300, 900])


def transcription_job_id(ticket_id: int) -> str:
    return f"transcribe-voicemail-{ticket_id}"


def queue_transcription(queue: Queue, ticket_id: int) -> Job | None:
    """Queue the ticket's transcription unless a live job for it exists; returns the new job."""
    job_id = transcription_job_id(ticket_id)
    try:
        if Job.fetch(job_id, connection=queue.connection).get_status() in ALIVE:
            return None
    except NoSuchJobError:
        pass
    return queue.enqueue("tickets.jobs.transcribe_voicemail", ticket_id, job_id=job_id, retry=RETRY)


def sweep_once(factory: sessionmaker[Session], queue: Queue) -> int:
    queued = 0
    for ticket_id in pending_voicemails(factory):
        if queue_transcription(queue, ticket_id) is not None:
            queued += 1
    if queued:
        log.info("re-queued %d voicemail transcriptions", queued)
    return queued


def run_periodically(
    factory: sessionmaker[Session], queue: Queue, stop: threading.Event, every_s: float
) -> None:
    while True:
        try:
            sweep_once(factory, queue)
        except (redis.RedisError, OSError) as exc:
            log.warning("sweep skipped: %s", exc)
        if stop.wait(every_s):
            return


def periodic_job_id(name: str) -> str:
    return f"periodic-{name}"


def enqueue_periodically(queue: Queue, name: str, stop: threading.Event, every_s: float) -> None:
    """Queue job `name` (a dotted path) every `every_s` seconds, unless its last run is still live.

    Several RQ worker processes may run this at once: the fixed job id keeps one live copy.
    """
    job_id = periodic_job_id(name)
    while True:
        try:
            try:
                alive = Job.fetch(job_id, connection=queue.connection).get_status() in ALIVE
            except NoSuchJobError:
                alive = False
            if not alive:
                queue.enqueue(name, job_id=job_id, result_ttl=60, failure_ttl=3600)
        except (redis.RedisError, OSError) as exc:
            log.warning("periodic %s not queued: %s", name, exc)
        if stop.wait(every_s):
            return
