"""Open311 GeoReport v2 at `/open311/v2/`: discovery, services, definitions, requests, tokens.

Every path ends in `.json` or `.xml`. Reading needs no key; `POST requests` needs an `api_key`
(`tickets.open311_keys`) and is form-encoded UTF-8. Errors are the spec's list of
`{code, description}` (`<errors><error>` in XML): 404 for an unknown service, request or token,
403 for a missing or bad api_key, 400 for anything else wrong with the request.
"""

from __future__ import annotations

import datetime as dt
import re

from flask import Blueprint, Response, current_app, request, url_for
from flask.sansio.blueprints import BlueprintSetupState
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.accounts import audit
from hotline.db import transaction, utcnow
from tickets import notify, open311_data, open311_keys
from tickets.deadlines import LOCAL
from tickets.models import Channel, Department, DepartmentKind, RequestKind
from tickets.models_outcomes import Medium, Open311Request
from tickets.open311_format import errors, iso, respond
from tickets.service import create_ticket

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
FMT = "<any(json,xml):fmt>"
MAX_DESCRIPTION = 4000
MAX_RANGE = dt.timedelta(days=90)
CHANGESET = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)  # when this API's shape last changed
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FIELD_LIMITS = {
    "address_string": 200,
    "address_id": 100,
    "email": 200,
    "device_id": 100,
    "account_id": 100,
    "first_name": 64,
    "last_name": 64,
    "phone": 32,
    "media_url": 500,
}


def _setup(state: BlueprintSetupState) -> None:
    # api_key clients post without cookies: CSRF does not apply. CSRFProtect must be set up first.
    csrf = state.app.extensions.get("csrf")
    if csrf is None:
        raise RuntimeError("register tickets.open311 after CSRFProtect(app)")
    csrf.exempt(bp)
    limiter = state.app.extensions["hotline"].get("limiter")
    if limiter is not None:  # a client gone wrong must not flood the centre with tickets
        view = state.app.view_functions["open311.post_request"]
        state.app.view_functions["open311.post_request"] = limiter.limit("30 per minute")(view)


def _db() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    return factory


@bp.get(f"/discovery.{FMT}")
def discovery(fmt: str) -> Response:
    endpoint = url_for("open311.discovery", fmt=fmt, _external=True).rsplit("/", 1)[0]
    return respond(
        fmt,
        "discovery",
        {
            "changeset": iso(CHANGESET),
            "contact": "六盘水市 12345 政务服务便民热线（拨打 12345）",
            "key_service": "api_key 由 12345 热线中心发放，请联系中心系统管理员",
            "endpoints": [
                {
                    "specification": "http://wiki.open311.org/GeoReport_v2",
                    "url": endpoint,
                    "changeset": iso(CHANGESET),
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        },
    )


@bp.get(f"/services.{FMT}")
def services(fmt: str) -> Response:
    with _db()() as session:
        return respond(fmt, "services", open311_data.services(session))


@bp.get(f"/services/<code>.{FMT}")
def service_definition(code: str, fmt: str) -> Response:
    with _db()() as session:
        if open311_data.service(session, code) is None:
            return errors(fmt, 404, [f"service_code {code} 不存在"])
    return respond(fmt, "service_definition", open311_data.definition(code))


def _form_problems(form: dict[str, str], session: Session) -> list[str]:
    problems = []
    code = form.get("service_code", "")
    if not code:
        problems.append("缺少 service_code")
    elif open311_data.service(session, code) is None:
        problems.append(f"service_code {code} 不存在")
    lat, long = form.get("lat", ""), form.get("long", "")
    if not ((lat and long) or form.get("address_string") or form.get("address_id")):
        problems.append("需提供位置：lat 与 long、address_string 或 address_id")
    if lat or long:
        try:
            if not (-90 <= float(lat) <= 90 and -180 <= float(long) <= 180):
                problems.append("lat 或 long 超出范围")
        except ValueError:
            problems.append("lat 与 long 应同时提供且为数字")
    if len(form.get("description", "")) > MAX_DESCRIPTION:
        problems.append(f"description 不能超过 {MAX_DESCRIPTION} 字")
    for name, limit in _FIELD_LIMITS.items():
        if len(form.get(name, "")) > limit:
            problems.append(f"{name} 不能超过 {limit} 个字符")
    if form.get("email") and not _EMAIL.match(form["email"]):
        problems.append("email 格式不正确")
    if form.get("media_url") and not re.match(r"^https?://", form["media_url"]):
        problems.append("media_url 应为 http(s) 地址")
    if open311_data.request_kind(form.get("attribute[request_kind]", "")) is None:
        problems.append("attribute[request_kind] 取值不正确")
    return problems


def _district(session: Session, address: str) -> str:
    """The district named in the address, if exactly one is."""
    names = session.scalars(
        select(Department.name).where(Department.kind == DepartmentKind.DISTRICT, Department.active)
    )
    found = [name for name in names if name in address]
    return found[0] if len(found) == 1 else ""


@bp.post(f"/requests.{FMT}")
def post_request(fmt: str) -> Response:
    if request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return errors(fmt, 400, ["请求体应为表单编码（application/x-www-form-urlencoded，UTF-8）"])
    form = {key: value.strip() for key, value in request.form.items()}
    key = form.get("api_key", "")
    with transaction(_db()) as session:
        client = open311_keys.authenticate(session, key) if key else None
        if client is None:
            return errors(fmt, 403, ["api_key 缺失或无效" if key else "缺少 api_key"])
        problems = _form_problems(form, session)
        if problems:
            return errors(fmt, 400, problems)
        category = open311_data.service(session, form["service_code"])
        assert category is not None  # checked above
        lat, long = form.get("lat", ""), form.get("long", "")
        address = form.get("address_string") or form.get("address_id") or f"{lat},{long}"
        description = form.get("description", "")
        kind = open311_data.request_kind(form.get("attribute[request_kind]", ""))
        ticket = create_ticket(
            session,
            channel=Channel.OPEN311,
            content=description or category.name,
            title=(description or category.name)[:40],
            caller_phone=form.get("phone", ""),
            caller_name=form.get("last_name", "") + form.get("first_name", ""),
            category_code=category.code,
            district=_district(session, address),
            address=address[:200],
            confidential=form.get("attribute[confidential]", "").lower() in open311_data.TRUE_VALUES,
            request_kind=kind or RequestKind.HELP,
        )
        attributes = {k[10:-1]: v for k, v in form.items() if k.startswith("attribute[") and k.endswith("]")}
        session.add(
            Open311Request(
                ticket_id=ticket.id,
                client_id=client.id,
                lat=float(lat) if lat else None,
                long=float(long) if long else None,
                address_id=form.get("address_id", ""),
                email=form.get("email", ""),
                device_id=form.get("device_id", ""),
                account_id=form.get("account_id", ""),
                first_name=form.get("first_name", ""),
                last_name=form.get("last_name", ""),
                media_url=form.get("media_url", ""),
                attributes=attributes,
            )
        )
        if form.get("email"):
            # The acceptance SMS went out with the ticket; the address arrived just now.
            text = notify.accepted_text(ticket)
            notify.to_citizen(
                session, ticket, notify.Kind.ACCEPTED, text, ticket.created_at, only=Medium.EMAIL
            )
        audit(
            session,
            "open311.request",
            target_type="ticket",
            target_id=ticket.number,
            source=f"open311:{client.id}",
        )
        answer = {
            "service_request_id": ticket.number,
            "service_notice": "已受理，12345 热线中心将转交承办单位办理",
            "account_id": form.get("account_id") or None,
        }
    return respond(fmt, "service_requests", [answer])


def _parse_time(value: str, name: str, problems: list[str]) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        problems.append(f"{name} 应为 ISO 8601 时间，如 2026-10-01T00:00:00+08:00")
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=LOCAL)


@bp.get(f"/requests.{FMT}")
def get_requests(fmt: str) -> Response:
    args = request.args
    problems: list[str] = []
    numbers = [n.strip() for n in args.get("service_request_id", "").split(",") if n.strip()] or None
    codes = [c.strip() for c in args.get("service_code", "").split(",") if c.strip()]
    statuses = {s.strip() for s in args.get("status", "").split(",") if s.strip()}
    if statuses - {"open", "closed"}:
        problems.append("status 取值应为 open 或 closed")
    start = _parse_time(args.get("start_date", ""), "start_date", problems)
    end = _parse_time(args.get("end_date", ""), "end_date", problems)
    if problems:
        return errors(fmt, 400, problems)
    # Without dates, the last 90 days; with one, 90 days from or up to it.
    if start is None:
        end = end or utcnow()
        start = end - MAX_RANGE
    elif end is None:
        end = start + MAX_RANGE
    if end < start:
        return errors(fmt, 400, ["end_date 不能早于 start_date"])
    if end - start > MAX_RANGE:
        return errors(fmt, 400, ["start_date 与 end_date 相隔不能超过 90 天"])
    with _db()() as session:
        found = open311_data.listing(
            session, numbers=numbers, codes=codes, start=start, end=end, statuses=statuses
        )
    return respond(fmt, "service_requests", found)


@bp.get(f"/requests/<number>.{FMT}")
def get_request(number: str, fmt: str) -> Response:
    with _db()() as session:
        ticket = open311_data.visible(session, number)
        if ticket is None:
            return errors(fmt, 404, [f"service_request_id {number} 不存在"])
        return respond(fmt, "service_requests", [open311_data.document(session, ticket)])


@bp.get(f"/tokens/<token>.{FMT}")
def get_token(token: str, fmt: str) -> Response:
    # Requests get their id at once, so a token is the id itself.
    with _db()() as session:
        ticket = open311_data.visible(session, token)
        if ticket is None:
            return errors(fmt, 404, [f"token {token} 不存在"])
    return respond(fmt, "service_requests", [{"service_request_id": token, "token": token}])


@bp.route("/<path:rest>", methods=["GET", "POST"])
def unknown(rest: str) -> Response:
    fmt = "json" if rest.endswith(".json") else "xml"
    return errors(fmt, 404, [f"没有这个接口：/{rest}（路径须以 .json 或 .xml 结尾）"])


# Last: the views above must be registered before `_setup` wraps one of them.
bp.record_once(_setup)
