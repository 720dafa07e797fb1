"""Callback tasks out to the phone: dial a due task when a seat could take it, close it on the result.

Runs in the registrar's loop (`ivr.registrar.run`, once a second, one per Kamailio). A round:
1. every task being dialled whose outbound request is done is closed: bridged to an agent ->
   `done`; not reached (busy, no answer, failed) -> `open` again in 10 minutes, `failed` after
   three tries (`acd.callbacks.move`);
2. for each queue with a ready, registered seat and nobody waiting (callers on the line come
   first), as many due tasks as such seats, in the order of their place in line, are dialled:
   `ivr.outbound.originate(target=<number>, scene="callback")`; a worker with room claims it and
   runs `ivr.callback_call.CallbackCall`, which queues the citizen at the task's place.
The request id is `callback-<task>-<attempt>`, so a round repeated after a crash asks nothing twice.
"""

from __future__ import annotations

import logging
from collections import Counter

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd import callbacks
from acd.callbacks import CallbackStatus, CallbackTask
from acd.seat_states import SeatState
from acd.store import AcdStore
from hotline.db import transaction
from ivr import outbound

log = logging.getLogger(__name__)

SCENE = "callback"
RING_S = 30.0
DIALLING = select(CallbackTask).where(CallbackTask.status == CallbackStatus.DIALLING)


def request_id(task: CallbackTask) -> str:
    return f"callback-{task.id}-{task.attempts}"


class CallbackPlacer:
    def __init__(self, factory: sessionmaker[Session], store: AcdStore, client: redis.Redis) -> None:
        self.factory = factory
        self.store = store
        self.client = client

    def round(self) -> None:
        self._close_finished()
        free = self._free_seats()
        if not free:
            return
        with transaction(self.factory) as session:
            dialling = Counter(
                t.queue
                for t in session.scalars(
                    select(CallbackTask).where(CallbackTask.status == CallbackStatus.DIALLING)
                )
            )
            for task in callbacks.due(session):
                queue = task.queue or "general"
                if free.get(queue, 0) - dialling[queue] <= 0:
                    continue
                callbacks.move(task, CallbackStatus.DIALLING)
                dialling[queue] += 1
                data = {"task_id": task.id, "queue": queue, "entered_at": task.entered_at.timestamp()}
                outbound.originate(
                    self.client, task.caller, SCENE, data, request_id=request_id(task), ring_s=RING_S
                )
                log.info("callback %d: calling %s back for queue %s", task.id, task.caller, queue)

    def _free_seats(self) -> dict[str, int]:
        """Per queue: ready, registered seats with its skill, when nobody waits in it."""
        seats = [s for s in self.store.seats() if s.state is SeatState.READY and s.registered]
        free: dict[str, int] = {}
        for queue in {skill for seat in seats for skill in seat.skills}:
            if not self.store.waiting(queue):
                free[queue] = sum(1 for s in seats if queue in s.skills)
        return free

    def _close_finished(self) -> None:
        with transaction(self.factory) as session:
            for task in session.scalars(
                select(CallbackTask).where(CallbackTask.status == CallbackStatus.DIALLING)
            ):
                found = outbound.status(self.client, request_id(task))
                if found.get("state") != outbound.State.DONE.value:
                    continue
                if found.get("bridged") == "true":
                    callbacks.move(task, CallbackStatus.DONE, outcome="bridged")
                else:
                    callbacks.move(task, CallbackStatus.OPEN, outcome=found.get("result", "failed"))
                log.info("callback %d: %s", task.id, task.status.value)
