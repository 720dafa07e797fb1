"""Callback tasks: one open task per number, counted misses, retries and a clear refusal."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session, sessionmaker

from acd import callbacks
from acd.callbacks import CallbackError, CallbackReason, CallbackStatus
from hotline.db import transaction

NOW = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)


def test_a_number_that_missed_twice_gets_one_task_and_a_request_to_be_called_back_outranks_it(
    db: sessionmaker[Session],
) -> None:
    with transaction(db) as session:
        first = callbacks.book(session, "13800000001", "c1", CallbackReason.ABANDONED_IVR, now=NOW)
        again = callbacks.book(session, "13800000001", "c2", CallbackReason.VIRTUAL_HOLD, queue="general")
        assert again is first and first is not None
        assert first.missed == 2 and first.call_id == "c2" and first.reason is CallbackReason.VIRTUAL_HOLD
        assert callbacks.book(session, "", "c3", CallbackReason.ABANDONED_QUEUE) is None
        assert callbacks.book(session, "anonymous", "c4", CallbackReason.ABANDONED_QUEUE) is None
        later = callbacks.book(
            session, "13800000002", "c5", CallbackReason.LOST, now=NOW, entered_at=NOW + dt.timedelta(1)
        )
        session.flush()
        assert [t.caller for t in callbacks.due(session, now=NOW + dt.timedelta(2))] == [
            "13800000001",
            "13800000002",
        ]
        assert later is not None


def test_a_task_not_reached_is_tried_again_later_and_given_up_after_three_tries(
    db: sessionmaker[Session],
) -> None:
    with transaction(db) as session:
        task = callbacks.book(session, "13800000001", "c1", CallbackReason.ABANDONED_QUEUE, now=NOW)
        assert task is not None
        for attempt in range(1, 4):
            callbacks.move(task, CallbackStatus.DIALLING, now=NOW)
            assert task.attempts == attempt
            callbacks.move(task, CallbackStatus.OPEN, outcome="no_answer", now=NOW)
        assert task.status is CallbackStatus.FAILED and task.done_at == NOW and task.outcome == "no_answer"
        with pytest.raises(CallbackError, match="failed -> dialling not allowed"):
            callbacks.move(task, CallbackStatus.DIALLING)


def test_a_citizen_who_gets_through_first_is_not_called_back_but_a_call_being_dialled_goes_on(
    db: sessionmaker[Session],
) -> None:
    with transaction(db) as session:
        open_task = callbacks.book(session, "13800000001", "c1", CallbackReason.ABANDONED_QUEUE, now=NOW)
        dialling = callbacks.book(session, "13800000002", "c2", CallbackReason.ABANDONED_QUEUE, now=NOW)
        assert open_task is not None and dialling is not None
        callbacks.move(dialling, CallbackStatus.DIALLING, now=NOW)
        session.flush()
        assert callbacks.answered(session, "13800000001", now=NOW) is open_task
        assert callbacks.answered(session, "13800000002", now=NOW) is None
        assert (open_task.status, open_task.outcome) == (CallbackStatus.DONE, "called_in")
        assert open_task.done_at == NOW
        assert dialling.status is CallbackStatus.DIALLING
        session.flush()
        assert callbacks.due(session, now=NOW + dt.timedelta(hours=1)) == []
