"""回访 by phone: the periodic job that asks the softswitch to call citizens whose revisit is due.

The ticket engine may not import the softswitch, so each call is requested by enqueuing the RQ
job `ivr.outbound.originate_job` by dotted name; the softswitch's revisit scene then stores the
citizen's key through `tickets.revisit`, which completes the task. Calls are made only in the
daytime, and a task is requested at most once per `ATTEMPT_WINDOW_H` hours (the request id says
which window), so a citizen who was busy or did not answer is tried again later the same day and
on the following days until the task is done or the ticket moves on.
"""

from __future__ import annotations

import datetime as dt
import logging

from hotline import bus
from hotline.db import utcnow
from tickets import revisit
from tickets.deadlines import LOCAL

log = logging.getLogger(__name__)

ORIGINATE_JOB = "ivr.outbound.originate_job"
QUEUE = "default"
CALL_HOURS = (9, 20)  # local time: from 09:00 to before 20:00, never at night
ATTEMPT_WINDOW_H = 3


def request_id(task_id: int, at: dt.datetime) -> str:
    """One request per task and window: asking again within the window asks for nothing new."""
    local = at.astimezone(LOCAL)
    return f"revisit-{task_id}-{local:%Y%m%d}-{local.hour // ATTEMPT_WINDOW_H}"


def request_calls(now: dt.datetime | None = None) -> dict[str, object]:
    """Ask for a revisit call for every task due today (RQ job `tickets.revisit_calls.request_calls`)."""
    from rq import Queue

    from tickets.jobs import _context

    now = now or utcnow()
    local = now.astimezone(LOCAL)
    if not CALL_HOURS[0] <= local.hour < CALL_HOURS[1]:
        return {"requested": [], "status": "outside calling hours"}
    settings, factory = _context()
    with factory() as session:
        due = [
            (task.id, ticket.id, ticket.caller_phone)
            for task, ticket in revisit.due_revisits(session, local.date())
            if ticket.caller_phone
        ]
    if not due:
        return {"requested": [], "status": "nothing due"}
    # RQ stores pickled payloads: its connection must not decode responses.
    connection = bus.connect(settings.effective_redis_url, decode_responses=False)
    try:
        queue = Queue(QUEUE, connection=connection)
        requested = []
        for task_id, ticket_id, phone in due:
            rid = request_id(task_id, now)
            data = {"ticket_id": ticket_id, "task_id": task_id}
            queue.enqueue(ORIGINATE_JOB, phone, "revisit", data, rid, job_id=f"originate-{rid}")
            requested.append(rid)
    finally:
        connection.close()
    log.info("requested %d revisit call(s)", len(requested))
    return {"requested": requested, "status": "ok"}
