"""Playing recordings in the browser: authorised roles only, HTTP range requests, every playback audited."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from hotline.accounts import Role, audit, require_role
from hotline.db import transaction
from recordings.models import Recording

bp = Blueprint("recordings", __name__, url_prefix="/recordings")

# Who may listen: supervisors (quality checks) and administrators. Agents and departments get a
# transcript through the ticket, not the caller's voice.
LISTENERS = (Role.SUPERVISOR, Role.ADMIN)


@bp.get("/calls/<call_id>")
@require_role(*LISTENERS)
def of_call(call_id: str) -> ResponseReturnValue:
    with current_app.extensions["hotline"]["db"]() as session:
        rows = session.scalars(select(Recording).where(Recording.call_id == call_id).order_by(Recording.id))
        return jsonify(
            recordings=[
                {
                    "id": r.id,
                    "leg": r.leg,
                    "duration_s": r.duration_s,
                    "complete": r.complete,
                    "url": f"/recordings/{r.id}/audio",
                }
                for r in rows
            ]
        )


@bp.get("/<int:recording_id>/audio")
@require_role(*LISTENERS)
def audio(recording_id: int) -> ResponseReturnValue:
    settings = current_app.extensions["hotline"]["settings"]
    with transaction(current_app.extensions["hotline"]["db"]) as session:
        recording = session.get(Recording, recording_id)
        if recording is None:
            abort(404)
        path = (settings.recordings_dir / recording.path).resolve()
        if not path.is_relative_to(settings.recordings_dir.resolve()) or not path.is_file():
            abort(404)
        # Range requests re-fetch parts of one playback: audit the first request only.
        first_part = request.headers.get("Range", "bytes=0-") in ("", "bytes=0-")
        if first_part:
            audit(
                session,
                "recording.play",
                actor_id=current_user.id,
                target_type="recording",
                target_id=recording.id,
                detail={"call_id": recording.call_id, "leg": recording.leg},
                source=request.remote_addr or "",
            )
    # Read whole (a 10-minute telephone recording is under 10 MB) and let werkzeug answer the
    # range: no file handle outlives the request, however the browser abandons it.
    data = path.read_bytes()
    response = Response(data, mimetype="audio/wav")
    response.headers["Cache-Control"] = "no-store"
    return response.make_conditional(request.environ, accept_ranges=True, complete_length=len(data))
