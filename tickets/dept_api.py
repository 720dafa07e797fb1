"""The department API (JSON) for department systems: list, read, sign, reply and return tickets.

`Authorization: Bearer <token>` names the department (tokens from `tickets.api_tokens`). Every
POST needs an `Idempotency-Key` header: the first successful answer for a key is stored with the
change and returned again for a replay, which changes nothing; a key reused for a different
request is refused (422). Another department's ticket is a 404, like one that does not exist.
Errors are `{"error": {"code": ..., "message": ...}}` with a Chinese message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask.sansio.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from hotline.accounts import audit
from hotline.db import transaction, utcnow
from tickets import api_tokens, dispatch, inbox, labels
from tickets.lifecycle import TransitionError
from tickets.models import Ticket

bp = Blueprint("dept_api", __name__, url_prefix="/api/dept/v1")
MAX_KEY = 128


class _Invalid(Exception):
    """A request body the step cannot use (400); the message is Chinese."""


def _exempt_from_csrf(state: BlueprintSetupState) -> None:
    # Token-authenticated and cookie-free: CSRF does not apply. CSRFProtect must be set up first.
    csrf = state.app.extensions.get("csrf")
    if csrf is None:
        raise RuntimeError("register tickets.dept_api after CSRFProtect(app)")
    csrf.exempt(bp)


bp.record_once(_exempt_from_csrf)


def _db() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    return factory


def error(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify(error={"code": code, "message": message}), status


def _authenticated(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error(401, "unauthorized", "缺少访问令牌（Authorization: Bearer <token>）")
        with transaction(_db()) as session:
            record = api_tokens.authenticate(session, token.strip())
            if record is None:
                return error(401, "unauthorized", "访问令牌无效或已吊销")
            g.department_id, g.token_id = record.department_id, record.id
        return view(*args, **kwargs)

    return wrapped


@bp.errorhandler(404)
def _not_found(_error: Exception) -> ResponseReturnValue:
    return error(404, "not_found", "工单不存在")


@bp.get("/tickets")
@_authenticated
def list_tickets() -> ResponseReturnValue:
    try:
        view = inbox.View(request.args.get("view", inbox.View.TODO.value))
    except ValueError:
        return error(400, "bad_request", f"view 取值应为 {', '.join(v.value for v in inbox.View)}")
    now = utcnow()
    with _db()() as session:
        rows = inbox.listing(session, g.department_id, view, now)
        return jsonify(tickets=[inbox.as_json(row.ticket, row.share, now) for row in rows])


@bp.get("/tickets/<number>")
@_authenticated
def get_ticket(number: str) -> ResponseReturnValue:
    now = utcnow()
    with transaction(_db()) as session:
        found = inbox.find(session, g.department_id, number)
        if found is None:
            return error(404, "not_found", "工单不存在")
        audit(session, "ticket.view", target_type="ticket", target_id=number, source=f"api:{g.token_id}")
        detail = inbox.detail(session, *found, now)
        return jsonify(ticket=inbox.as_json(*found, now), history=inbox.history_json(detail))


Step = Callable[[Session, Ticket, dict[str, Any], str], object]


def _idempotent_step(number: str, step: Step) -> ResponseReturnValue:
    """Run `step` on the department's ticket once per Idempotency-Key."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > MAX_KEY:
        return error(400, "idempotency_key_required", f"请提供 Idempotency-Key 请求头（1–{MAX_KEY} 个字符）")
    body = request.get_json(silent=True)
    if request.get_data() and not isinstance(body, dict):
        return error(400, "bad_request", "请求体应为 JSON 对象")
    fingerprint = api_tokens.request_hash(request.method, request.path, request.get_data())
    department_id: int = g.department_id
    source = f"api:{g.token_id}"
    try:
        with transaction(_db()) as session:
            earlier = api_tokens.replay(session, department_id, key, fingerprint)
            if earlier is not None:
                return _replayed(earlier)
            found = inbox.find(session, department_id, number, for_update=True)
            if found is None:
                return error(404, "not_found", "工单不存在")
            ticket, share = found
            step(session, ticket, body or {}, source)
            answer = {"ticket": inbox.as_json(ticket, share, utcnow())}
            api_tokens.remember(session, department_id, key, fingerprint, 200, answer)
    except (_Invalid, TransitionError, dispatch.DispatchError, IntegrityError, StaleDataError) as failure:
        # A twin request with the same key may have committed meanwhile: then answer as it did.
        with _db()() as session:
            earlier = api_tokens.replay(session, department_id, key, fingerprint)
        if earlier is not None:
            return _replayed(earlier)
        if isinstance(failure, _Invalid):
            return error(400, "bad_request", str(failure))
        if isinstance(failure, TransitionError):
            return error(409, "not_allowed", labels.refused(failure))
        if isinstance(failure, dispatch.DispatchError):
            return error(409, "not_allowed", str(failure))
        if isinstance(failure, StaleDataError):
            return error(409, "conflict", "工单刚被另一请求更新，请重新获取后再试")
        raise
    return jsonify(answer), 200


def _replayed(earlier: api_tokens.Replay) -> ResponseReturnValue:
    if not earlier.same_request:
        return error(422, "idempotency_key_reused", "该 Idempotency-Key 已用于另一个请求")
    response = jsonify(earlier.body)
    response.headers["Idempotent-Replayed"] = "true"
    return response, earlier.status_code


@bp.post("/tickets/<number>/sign")
@_authenticated
def sign(number: str) -> ResponseReturnValue:
    return _idempotent_step(
        number,
        lambda session, ticket, _body, source: dispatch.sign(session, ticket, g.department_id, source=source),
    )


@bp.post("/tickets/<number>/reply")
@_authenticated
def reply(number: str) -> ResponseReturnValue:
    def step(session: Session, ticket: Ticket, body: dict[str, Any], source: str) -> object:
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _Invalid("请在 text 字段填写办理结果")
        return dispatch.reply(session, ticket, g.department_id, text, source=source)

    return _idempotent_step(number, step)


@bp.post("/tickets/<number>/return")
@_authenticated
def return_(number: str) -> ResponseReturnValue:
    def step(session: Session, ticket: Ticket, body: dict[str, Any], source: str) -> object:
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise _Invalid("请在 reason 字段填写退单理由")
        return dispatch.return_(session, ticket, g.department_id, reason, source=source)

    return _idempotent_step(number, step)
