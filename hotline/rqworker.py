"""`hotline worker`: an RQ worker with its scheduler, on the hotline's queues.

Jobs (speech-to-text, notifications, SLA checks, callbacks) are enqueued by dotted name, so the
processes that enqueue never import the job code.
"""

from __future__ import annotations

import threading

from rq import Queue, Worker

from hotline import bus, sweeper
from hotline.db import make_engine, make_session_factory
from hotline.settings import Settings
from tickets.jobs import PERIODIC

SWEEP_EVERY_S = 120.0
# The daily report (日报) lives beside the report queries in agent_desk: named here, never imported.
# It looks every 10 minutes and writes yesterday's file once.
DESK_PERIODIC = (("agent_desk.daily_report.daily_report", 600.0),)


def run(settings: Settings) -> int:
    if settings.vosk_model is not None:
        # RQ forks a work horse per job: a model loaded here is shared by every fork instead of
        # being loaded again (1-3 s, hundreds of MB) for each voicemail.
        from recordings import transcribe

        transcribe.load_model(settings.vosk_model)
    # RQ stores pickled payloads: its connection must not decode responses.
    connection = bus.connect(settings.effective_redis_url, decode_responses=False)
    queues = [Queue(name, connection=connection) for name in settings.rq_queues]
    worker = Worker(queues, connection=connection, name=None)
    factory = make_session_factory(make_engine(settings.effective_database_url))
    stop = threading.Event()
    default = next((q for q in queues if q.name == "default"), queues[0])
    threading.Thread(
        target=sweeper.run_periodically,
        args=(factory, default, stop, SWEEP_EVERY_S),
        name="sweeper",
        daemon=True,
    ).start()
    # Outbox delivery, the SLA sweep (催办/督办) and the daily report, each safe to run twice.
    for name, every_s in (*PERIODIC, *DESK_PERIODIC):
        threading.Thread(
            target=sweeper.enqueue_periodically, args=(default, name, stop, every_s), name=name, daemon=True
        ).start()
    try:
        worker.work(with_scheduler=True)
    finally:
        stop.set()
    return 0
