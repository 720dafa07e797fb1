"""The live transcript on the desk: what was said so far on a call, read back from SQL.

The softswitch publishes each segment as it is decoded (`transcript` events, to supervisors and
the agent of the bridged seat); this endpoint gives the whole transcript so far, so a reloaded or
reconnected desk, or one whose seat has just been offered the call, shows it from the start.
An agent reads only the call its seat is on (or took); a supervisor any call.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Call, Seat
from acd.store import AcdStore
from hotline.accounts import Role, require_role
from recordings import transcripts

transcript_bp = Blueprint("transcript", __name__, url_prefix="/desk/api")


def _agents_call(session: Session, call_id: str) -> bool:
    """Whether the current agent's seat is on the call now, or took it (wrap-up, a reload later)."""
    seat = session.scalar(select(Seat).where(Seat.agent_id == current_user.id, Seat.active.is_(True)))
    if seat is None:
        return False
    store: AcdStore = current_app.extensions["hotline"]["acd"]
    try:
        if store.seat(seat.extension).call_id == call_id:
            return True
    except KeyError:
        pass  # not logged in: only the record can say it was this seat's call
    taken = session.scalar(select(Call.id).where(Call.call_id == call_id, Call.seat_id == seat.id))
    return taken is not None


@transcript_bp.get("/transcript")
@require_role(Role.AGENT, Role.SUPERVISOR)
def transcript() -> ResponseReturnValue:
    call_id = request.args.get("call_id", "")[:64]
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    with factory() as session:
        # Somebody else's call answers as if it did not exist.
        if not call_id or (current_user.role is not Role.SUPERVISOR and not _agents_call(session, call_id)):
            abort(404)
        segments = transcripts.for_call(session, call_id)
    return jsonify(
        call_id=call_id,
        segments=[s.as_dict() for s in segments],
        caller_text=transcripts.caller_text(segments),
    )
