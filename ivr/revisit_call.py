"""回访 by phone: the outbound scene that reads a ticket's outcome and takes the citizen's rating by key.

The callee hears the hotline's hello and the recording notice (the leg is recorded from then on,
`OutboundCall.announce`), "您反映的问题（工单号）" + the number digit by digit + one sentence on the outcome,
then "满意请按1，基本满意请按2，不满意请按3". The key is stored through the ticket engine's own
revisit service (`tickets.revisit.revisit`, channel "ivr"), so the phone follows the same rules as
the portal: one rating per outcome, and 不满意 sends the ticket back (退回重办 / 重办). No key after
the question is asked again once, then the call ends politely without a rating; a callee who hangs
up leaves the ticket unrated (the revisit task stays pending for the next attempt).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hotline.db import transaction
from ivr.key_question import KeyQuestion
from ivr.playback import spoken_digits
from tickets import revisit
from tickets.models import Ticket, TicketStatus
from tickets.models_outcomes import Satisfaction

if TYPE_CHECKING:
    from ivr.dialer import OutboundCall

log = logging.getLogger(__name__)

KEYS = {"1": Satisfaction.SATISFIED, "2": Satisfaction.BASICALLY_SATISFIED, "3": Satisfaction.DISSATISFIED}
ASK_TIMEOUT_S = 8.0  # after the question, for a key; a request may ask for 2-30 s (`key_wait_s`)
ASK_RETRIES = 1  # the question is asked again this many times (no key, or a wrong one)
OUTCOME_PROMPTS = {
    TicketStatus.REPLIED: "revisit_outcome_replied",
    TicketStatus.REVIEWED: "revisit_outcome_replied",
    TicketStatus.RESOLVED_DIRECTLY: "revisit_outcome_direct",
    TicketStatus.CLOSED: "revisit_outcome_replied",
}


@dataclass(frozen=True)
class RevisitInfo:
    number: str
    status: TicketStatus
    ratable: bool


def load(factory: Any, ticket_id: int) -> RevisitInfo | None:
    """What the call reads out (SQL thread)."""
    with factory() as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            return None
        return RevisitInfo(ticket.number, ticket.status, revisit.can_rate(session, ticket))


def store(factory: Any, ticket_id: int, level: Satisfaction) -> bool:
    """The rating through the ticket engine (SQL thread); False if it was rated meanwhile."""
    try:
        with transaction(factory) as session:
            ticket = session.get(Ticket, ticket_id)
            if ticket is None:
                return False
            revisit.revisit(session, ticket, level, "ivr")
    except revisit.RevisitError as exc:
        log.info("revisit of ticket %s not stored: %s", ticket_id, exc)
        return False
    return True


class RevisitCall:
    """The scene: read the outcome, ask, store the key, thank and say goodbye."""

    def __init__(self, call: OutboundCall) -> None:
        self.call = call
        self.ticket_id = int(call.request.data["ticket_id"])
        key_wait_s = min(30.0, max(2.0, float(call.request.data.get("key_wait_s", ASK_TIMEOUT_S))))
        self.phase = "loading"  # loading -> asking -> saving -> done
        self.question = KeyQuestion(
            call.playback,
            call.dialer.edge,
            "revisit_ask",
            KEYS,
            key_wait_s,
            ASK_RETRIES,
            on_key=self._rated,
            on_give_up=lambda: self._finish("no_input", ["revisit_no_rating", "goodbye"]),
            on_miss=self._missed,
        )
        call.outcome.update(ticket_id=self.ticket_id, revisit="hung_up")

    def start(self) -> None:
        self.call.announce(["outbound_hello"], self._announced)

    def _broken(self, exc: Exception) -> None:
        self._finish("unavailable", ["revisit_no_rating", "goodbye"])

    def _loaded(self, info: RevisitInfo | None) -> None:
        if self.phase != "loading":
            return
        if info is None or not info.ratable:
            # Rated on the portal meanwhile, or moved on: nothing to ask.
            self._finish("not_needed", ["revisit_done_already", "goodbye"])
            return
        self.phase = "asking"
        outcome = OUTCOME_PROMPTS.get(info.status, "revisit_outcome_replied")
        self.question.ask(["revisit_intro", *spoken_digits(info.number), outcome])

    def _announced(self) -> None:
        ctx, ticket_id = self.call.ctx, self.ticket_id
        ctx.offload.sql(lambda: load(ctx.factory, ticket_id), on_done=self._loaded, on_error=self._broken)

    def _missed(self, digit: str) -> None:
        if digit:
            self.call.note(revisit="invalid", key=digit)
        else:
            self.call.note(revisit="no_input")

    def on_dtmf(self, digit: str) -> None:
        self.question.on_dtmf(digit)

    def _rated(self, digit: str) -> None:
        level = KEYS[digit]
        # Keys during the read-out count: a citizen who knows the question need not wait for it.
        self.call.playback.stop()
        self.phase = "saving"
        self.call.outcome.update(revisit="rated", rating=level.value)
        self.call.note(revisit="rated", key=digit, rating=level.value)
        ctx, ticket_id = self.call.ctx, self.ticket_id
        ctx.offload.sql(
            lambda: store(ctx.factory, ticket_id, level),
            on_done=lambda stored: self._stored(stored, level),
            on_error=lambda _exc: self._stored(False, level),
        )

    def _stored(self, stored: bool, level: Satisfaction) -> None:
        self.call.outcome["stored"] = stored
        thanks = ["revisit_thanks"]
        if stored and level in revisit.UNSATISFIED:
            thanks.append("revisit_redo")
        self._finish("rated", [*thanks, "goodbye"])

    def _finish(self, how: str, prompts: list[str]) -> None:
        self.question.close()
        if self.phase == "done":
            return
        self.phase = "done"
        self.call.outcome["revisit"] = how
        self.call.playback.play(prompts, on_done=self._hang_up)

    def _hang_up(self) -> None:
        self.call.leg.hangup()

    def on_end(self) -> None:
        self.question.close()
        if self.phase in ("loading", "asking"):
            self.phase = "done"  # hung up before rating: `revisit` stays "hung_up"
