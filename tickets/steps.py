"""One step on one ticket from a web page: locked, checked against the version the page showed,
and refused with the reason a user reads (shared by the department portal and the centre's pages).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from tickets import labels
from tickets.dispatch import DispatchError
from tickets.lifecycle import TransitionError
from tickets.models import Ticket

T = TypeVar("T")
STALE = "该工单已被他人更新，请刷新页面查看最新情况后再操作"


class Refused(Exception):
    """The step was not taken; the message (Chinese) says why. Nothing was written."""


class NotFound(Exception):
    """No such ticket for this user (pages answer 404, whatever the reason)."""


def same_version(ticket: Ticket, sent: str) -> None:
    """Refuse a step taken on a stale page (someone changed the ticket since it was shown).

    A page that sends no version (an API client, an old form) is not checked here; the version
    column still refuses a write that races another one.
    """
    if sent.isdigit() and int(sent) != ticket.version:
        raise Refused(STALE)


def run(
    factory: sessionmaker[Session],
    find: Callable[[Session], Ticket | None],
    sent_version: str,
    step: Callable[[Session, Ticket], T],
) -> T:
    """`step` on the ticket `find` returns (locked for update), in one transaction.

    `NotFound` when `find` returns None; `Refused` for a stale page, a transition the lifecycle
    does not allow, or a step the dispatch rules refuse. Either way the transaction rolls back.
    """
    try:
        with transaction(factory) as session:
            ticket = find(session)
            if ticket is None:
                raise NotFound
            same_version(ticket, sent_version)
            return step(session, ticket)
    except TransitionError as error:
        raise Refused(labels.refused(error)) from error
    except DispatchError as error:
        raise Refused(str(error)) from error
