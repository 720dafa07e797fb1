"""The public portal (外网) at `/portal/`: submit a request, look it up by number + phone, rate it.

No login. Abuse is held off without a CAPTCHA: a signed form stamp and a honeypot
(`tickets.antiabuse`), per-address rate limits, and look-ups that say the same neutral "not
found" for an unknown number and a wrong phone, limited per address and per number. A refused
form comes back with what was typed and the reason. A successful look-up grants this browser
session the ticket's page; the page shows the public view only (`tickets.public`).
"""

from __future__ import annotations

import hmac
import time
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sansio.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from sqlalchemy import Engine, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import RequestEntityTooLarge, TooManyRequests

from hotline.accounts import audit
from hotline.db import transaction, utcnow
from tickets import antiabuse, attachments, deadlines, labels, lookup_guard, privacy, public, revisit
from tickets.models import Channel, RequestKind, Ticket, TicketStatus
from tickets.models_outcomes import PortalSubmission, Satisfaction
from tickets.portal_forms import (
    PHOTO_MAX_BYTES,
    PHOTO_TYPES,
    LookupForm,
    RatingForm,
    SubmitForm,
    fill_choices,
    normal_phone,
)
from tickets.service import create_ticket

bp = Blueprint(
    "portal",
    __name__,
    url_prefix="/portal",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
GRANTS = "portal_tickets"  # session key: the ticket numbers this browser has looked up
MAX_GRANTS = 10
# One photo plus the form's text.
MAX_REQUEST_BYTES = PHOTO_MAX_BYTES + 256 * 1024
NOT_FOUND = "未找到匹配的工单，请核对工单号和提交时填写的联系电话"
_ALLOWED_PHOTOS = "、".join(dict.fromkeys(PHOTO_TYPES.values()))


def _db() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    return factory


def _source() -> str:
    return request.remote_addr or ""


def _grant(number: str) -> None:
    if session.get(GRANTS, [])[-1:] == [number]:
        return  # already the latest: an unchanged session is not signed and sent again
    granted = [n for n in session.get(GRANTS, []) if n != number]
    session[GRANTS] = [*granted, number][-MAX_GRANTS:]


def _granted(number: str) -> bool:
    return number in session.get(GRANTS, [])


@bp.url_value_preprocessor
def _limit_uploads(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Before the CSRF check reads the form: one photo plus the text, no more.
    request.max_content_length = MAX_REQUEST_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_error: RequestEntityTooLarge) -> ResponseReturnValue:
    message = f"照片超过 {PHOTO_MAX_BYTES // (1024 * 1024)} MB，未能提交。请压缩照片或不附照片后重新填写"
    return render_template("portal/message.html", title="提交未成功", message=message), 413


@bp.errorhandler(TooManyRequests)
def _too_many(_error: TooManyRequests) -> ResponseReturnValue:
    message = "操作过于频繁，请稍后再试。如有紧急情况请直接拨打 12345"
    return render_template("portal/message.html", title="请稍后再试", message=message), 429


@bp.errorhandler(CSRFError)
def _expired(_error: CSRFError) -> ResponseReturnValue:
    # The app answers a CSRF failure in JSON for the desk; a citizen gets the form back, still filled in.
    flash("页面已过期（或浏览器未保存 Cookie），请核对后重新提交", "error")
    if request.endpoint == "portal.submit":
        form = SubmitForm()  # what was typed, and a fresh token
        with _db()() as db:
            fill_choices(form, db)
        return _submit_page(form, 400)
    if request.endpoint == "portal.lookup":
        return render_template("portal/lookup.html", form=LookupForm()), 400
    return redirect(
        request.path.rsplit("/rate", 1)[0] if request.path.endswith("/rate") else url_for("portal.index")
    )


@bp.get("/")
def index() -> ResponseReturnValue:
    return render_template("portal/index.html")


def _submit_page(form: SubmitForm, status: int = 200) -> ResponseReturnValue:
    # A fresh stamp each time the page is shown: the time to fill it in counts from now.
    form.stamp.data = antiabuse.issue(current_app.secret_key or "", time.time())
    form.website.data = ""
    page = render_template(
        "portal/submit.html",
        form=form,
        photo_types=_ALLOWED_PHOTOS,
        photo_mb=PHOTO_MAX_BYTES // (1024 * 1024),
        accept=",".join(PHOTO_TYPES),
    )
    return page, status


@bp.get("/submit")
def submit_form() -> ResponseReturnValue:
    form = SubmitForm(formdata=None)
    with _db()() as db:
        fill_choices(form, db)
    return _submit_page(form)


@bp.post("/submit")
def submit() -> ResponseReturnValue:
    form = SubmitForm()
    with _db()() as db:
        fill_choices(form, db)
    try:
        nonce = antiabuse.check(
            current_app.secret_key or "", form.stamp.data or "", time.time(), form.website.data or ""
        )
    except antiabuse.Refused as refused:
        flash(str(refused), "error")
        form.validate()  # the fields' own problems too, so one more try can fix everything
        return _submit_page(form, 400)
    if not form.validate():
        flash("请按提示修改后再提交", "error")
        return _submit_page(form, 400)
    upload = request.files.get(form.photo.name)
    received: list[attachments.Received] = []
    try:
        if upload is not None and upload.filename:
            if Path(upload.filename).suffix.lower() not in PHOTO_TYPES:
                raise attachments.AttachmentError(f"照片仅支持 {_ALLOWED_PHOTOS} 格式")
            root = current_app.extensions["hotline"]["settings"].var_dir / "attachments"
            received.append(attachments.receive(upload.stream, upload.filename, root, PHOTO_MAX_BYTES))
        number = _create(form, nonce, received)
    except attachments.AttachmentError as error:
        flash(f"{error}。请重新选择照片（或不附照片）后提交", "error")
        return _submit_page(form, 400)
    finally:
        attachments.discard(received)  # whatever was not stored
    session["portal_submitted"] = number
    _grant(number)
    return redirect(url_for("portal.submitted"), 303)


def _create(form: SubmitForm, nonce: str, received: list[attachments.Received]) -> str:
    """The ticket for this form, made once: a double submit of the same form finds the first."""
    root = current_app.extensions["hotline"]["settings"].var_dir / "attachments"
    try:
        with transaction(_db()) as db:
            earlier = db.scalar(select(PortalSubmission).where(PortalSubmission.nonce == nonce))
            if earlier is not None:
                return db.get_one(Ticket, earlier.ticket_id).number
            now = utcnow()
            ticket = create_ticket(
                db,
                channel=Channel.PORTAL,
                content=form.content.data.strip(),
                caller_phone=normal_phone(form.phone.data),
                caller_name=(form.name.data or "").strip(),
                category_code=form.category.data,
                district=form.district.data or "",
                address=(form.address.data or "").strip(),
                confidential=bool(form.confidential.data),
                request_kind=RequestKind(form.request_kind.data),
                now=now,
            )
            db.add(PortalSubmission(nonce=nonce, ticket_id=ticket.id, created_at=now))
            db.flush()  # a twin request with this nonce fails here, before the photo moves
            attachments.store(
                db, received, root, ticket_id=ticket.id, department_id=None, event_id=None,
                uploaded_by_id=None, now=now,
            )  # fmt: skip
            audit(db, "portal.submit", target_type="ticket", target_id=ticket.number, source=_source())
            return ticket.number
    except IntegrityError:
        with _db()() as db:
            twin = db.scalar(select(PortalSubmission).where(PortalSubmission.nonce == nonce))
            if twin is None:
                raise
            return db.get_one(Ticket, twin.ticket_id).number


@bp.get("/submitted")
def submitted() -> ResponseReturnValue:
    number = session.get("portal_submitted")
    if not number:
        return redirect(url_for("portal.index"))
    return render_template("portal/submitted.html", number=number)


# Built once: the look-up is the portal's busiest request.
_PHONE_OF = select(Ticket.caller_phone).where(Ticket.number == bindparam("number"))


@bp.route("/lookup", methods=["GET", "POST"])
def lookup() -> ResponseReturnValue:
    form = LookupForm()
    if request.method == "GET":
        return render_template("portal/lookup.html", form=form)
    if not form.validate():
        return render_template("portal/lookup.html", form=form), 400
    number = form.number.data.strip()
    phone = normal_phone(form.phone.data).replace("-", "")
    redis, now = current_app.extensions["hotline"]["redis"], time.time()
    if not lookup_guard.allowed(redis, _source(), number, now):
        raise TooManyRequests()
    # One column in autocommit: no BEGIN/ROLLBACK round trips for a look-up that writes nothing
    # when it succeeds (only failures are audited, below).
    engine: Engine = current_app.extensions["hotline"]["engine"]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        found = connection.scalar(_PHONE_OF, {"number": number})
    stored = normal_phone(found).replace("-", "") if found is not None else ""
    # The same answer, in about the same time, whether the number or the phone was wrong.
    if not (hmac.compare_digest(stored.encode(), phone.encode()) and stored):
        with transaction(_db()) as db:
            audit(db, "portal.lookup_failed", target_type="ticket", target_id=number[:32], source=_source())
        lookup_guard.failed(redis, _source(), number, now)
        flash(NOT_FOUND, "error")
        return render_template("portal/lookup.html", form=form), 404
    _grant(number)
    return redirect(url_for("portal.ticket", number=number), 303)


def _ticket_page(db: Session, ticket: Ticket, form: RatingForm, status: int = 200) -> ResponseReturnValue:
    shown = public.view(db, ticket)
    page = render_template(
        "portal/ticket.html",
        v=shown,
        reporter=(privacy.mask_name(ticket.caller_name), privacy.mask_phone(ticket.caller_phone)),
        channel=labels.CHANNEL[ticket.channel],
        kind=labels.KIND[ticket.request_kind],
        can_rate=revisit.can_rate(db, ticket),
        rating=revisit.rating_of(db, ticket),
        rating_labels=revisit.LABELS,
        form=form,
        local=lambda moment: moment.astimezone(deadlines.LOCAL).strftime("%Y-%m-%d %H:%M") if moment else "",
    )
    return page, status


@bp.get("/tickets/<number>")
def ticket(number: str) -> ResponseReturnValue:
    if not _granted(number):
        flash("请先输入工单号和联系电话查询", "info")
        return redirect(url_for("portal.lookup"))
    with transaction(_db()) as db:
        found = db.scalar(select(Ticket).where(Ticket.number == number))
        if found is None:
            return redirect(url_for("portal.lookup"))
        audit(db, "portal.view", target_type="ticket", target_id=number, source=_source())
        return _ticket_page(db, found, RatingForm(formdata=None))


@bp.post("/tickets/<number>/rate")
def rate(number: str) -> ResponseReturnValue:
    if not _granted(number):
        return redirect(url_for("portal.lookup"))
    form = RatingForm()
    try:
        with transaction(_db()) as db:
            found = db.scalar(select(Ticket).where(Ticket.number == number).with_for_update())
            if found is None:
                return redirect(url_for("portal.lookup"))
            if not form.validate():
                flash("请选择满意程度后再提交", "error")
                return _ticket_page(db, found, form, 400)
            level = Satisfaction(form.level.data)
            revisit.revisit(db, found, level, "portal", comment=form.comment.data or "")
            reopened = found.status in (TicketStatus.IN_PROGRESS, TicketStatus.DISPATCHED)
    except revisit.RevisitError as error:
        flash(str(error), "error")
        return redirect(url_for("portal.ticket", number=number), 303)
    if reopened:
        flash("感谢您的评价。您的诉求已退回承办单位重新办理，办理结果将再次告知您", "info")
    else:
        flash("感谢您的评价！", "info")
    return redirect(url_for("portal.ticket", number=number), 303)


def _setup(state: BlueprintSetupState) -> None:
    """Rate limits per address on submitting and rating, with the app's limiter."""
    limiter = state.app.extensions["hotline"].get("limiter")
    if limiter is None:
        raise RuntimeError("register tickets.portal after hotline.auth.init_auth (its limiter)")
    views = state.app.view_functions

    # Stacked limits of one limiter are all checked by the innermost wrapper.
    submit = limiter.limit("60 per hour")(views["portal.submit"])
    made_ticket = limiter.limit(
        "5 per hour;20 per day", deduct_when=lambda response: response.status_code == 303
    )
    views["portal.submit"] = made_ticket(submit)
    # Look-ups are limited by `tickets.lookup_guard` in the view (failures only, one round trip);
    # exempt here, and filtered out before the limiter resolves which of its limits apply.
    limiter.exempt(views["portal.lookup"])
    limiter.request_filter(lambda: request.endpoint == "portal.lookup")
    views["portal.rate"] = limiter.limit("10 per hour")(views["portal.rate"])


# Last: the views above must be registered before `_setup` wraps them.
bp.record_once(_setup)
