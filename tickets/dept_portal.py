"""The department portal (内网): department staff list, read and act on their own tickets.

Only `Role.DEPARTMENT` users with a department get in. Another department's ticket is a 404,
never a 403, so its existence is not revealed. Every step goes through `tickets.dispatch`
(event + audit); a refused step re-renders the page with the reason and the typed text kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import DateField, MultipleFileField, TextAreaField
from wtforms.validators import DataRequired, Length

from hotline.accounts import Role, audit, require_role
from hotline.db import transaction, utcnow
from tickets import attachments, deadlines, dispatch, inbox, labels, steps
from tickets.models import Attachment, Ticket, TicketAssignment

bp = Blueprint(
    "dept",
    __name__,
    url_prefix="/dept",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
# The whole upload: every file at its limit plus the form's text.
MAX_REQUEST_BYTES = attachments.MAX_FILES * attachments.MAX_FILE_BYTES + 1024 * 1024


class ReplyForm(FlaskForm):  # type: ignore[misc]
    reply_text = TextAreaField(
        "办理结果",
        validators=[
            DataRequired(message="请填写办理结果"),
            Length(max=4000, message="办理结果不超过 4000 字"),
        ],
    )
    files = MultipleFileField("附件")


class ReturnForm(FlaskForm):  # type: ignore[misc]
    return_reason = TextAreaField(
        "退单理由",
        validators=[DataRequired(message="请填写退单理由"), Length(max=1000, message="不超过 1000 字")],
    )


class ExtensionForm(FlaskForm):  # type: ignore[misc]
    extension_reason = TextAreaField(
        "延期理由",
        validators=[DataRequired(message="请填写延期理由"), Length(max=1000, message="不超过 1000 字")],
    )
    extension_date = DateField("申请延期至", validators=[DataRequired(message="请选择新的办结日期")])


def _db() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    return factory


def _tz() -> ZoneInfo:
    return ZoneInfo(current_app.extensions["hotline"]["settings"].timezone)


def _policy() -> deadlines.DeadlinePolicy:
    policy: deadlines.DeadlinePolicy = current_app.extensions["hotline"].get(
        "deadline_policy", dispatch.DEFAULT_POLICY
    )
    return policy


def _attachments_root() -> Path:
    root: Path = current_app.extensions["hotline"]["settings"].var_dir / "attachments"
    return root


def _department_id() -> int:
    if current_user.department_id is None:
        abort(403)  # a department account not yet attached to a department
    department_id: int = current_user.department_id
    return department_id


def _not_found() -> NoReturn:
    abort(404)


@bp.url_value_preprocessor
def _limit_uploads(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Runs before the CSRF check reads the form, so an oversized upload is cut off at once.
    request.max_content_length = MAX_REQUEST_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_error: RequestEntityTooLarge) -> ResponseReturnValue:
    limit = MAX_REQUEST_BYTES // (1024 * 1024)
    flash(f"上传内容合计超过 {limit} MB，未保存任何内容，请减少或压缩附件后重试", "error")
    return redirect(request.referrer or url_for("dept.index")), 303


@bp.get("/")
@require_role(Role.DEPARTMENT)
def index() -> ResponseReturnValue:
    department_id = _department_id()
    try:
        view = inbox.View(request.args.get("view", inbox.View.TODO.value))
    except ValueError:
        view = inbox.View.TODO
    now = utcnow()
    with _db()() as session:
        rows = inbox.listing(session, department_id, view, now)
        return render_template(
            "dept/list.html",
            rows=rows,
            view=view,
            views=inbox.VIEW_LABELS,
            reporter=inbox.reporter,
            local=lambda moment: inbox.local(moment, _tz()),
            labels=labels,
        )


def _page(
    session: Session,
    ticket: Ticket,
    share: TicketAssignment,
    status: int = 200,
    **forms: FlaskForm,
) -> ResponseReturnValue:
    detail = inbox.detail(session, ticket, share, utcnow())
    forms.setdefault("reply_form", ReplyForm(formdata=None))
    forms.setdefault("return_form", ReturnForm(formdata=None))
    forms.setdefault("extension_form", ExtensionForm(formdata=None))
    page = render_template(
        "dept/detail.html",
        d=detail,
        person=inbox.reporter(ticket),
        steps=inbox.steps(ticket, share),
        local=lambda moment: inbox.local(moment, _tz()),
        labels=labels,
        size_label=attachments.size_label,
        max_files=attachments.MAX_FILES,
        max_file_mb=attachments.MAX_FILE_BYTES // (1024 * 1024),
        allowed=attachments.ALLOWED_LABEL,
        accept=",".join(attachments.TYPES),
        **forms,
    )
    return page, status


@bp.get("/tickets/<number>")
@require_role(Role.DEPARTMENT)
def ticket(number: str) -> ResponseReturnValue:
    department_id = _department_id()
    with transaction(_db()) as session:
        found = inbox.find(session, department_id, number) or _not_found()
        audit(
            session,
            "ticket.view",
            actor_id=current_user.id,
            target_type="ticket",
            target_id=number,
            source=request.remote_addr or "",
        )
        return _page(session, *found)


def _refused(number: str, message: str, status: int = 409, **forms: FlaskForm) -> ResponseReturnValue:
    """The page again with the reason on top and what the user typed still in the forms."""
    with _db()() as session:
        found = inbox.find(session, _department_id(), number) or _not_found()
        flash(message, "error")
        return _page(session, *found, status=status, **forms)


def _act(
    number: str, step: Callable[[Session, Ticket, int], object], **forms: FlaskForm
) -> ResponseReturnValue | None:
    """Take `step` on this department's ticket from the version the page showed; None when
    done, else the page again with the reason (`tickets.steps`)."""
    department_id = _department_id()

    def find(session: Session) -> Ticket | None:
        found = inbox.find(session, department_id, number, for_update=True)
        return found[0] if found is not None else None

    try:
        steps.run(_db(), find, request.form.get("version", ""), lambda s, t: step(s, t, department_id))
    except steps.NotFound:
        _not_found()
    except steps.Refused as refused:
        return _refused(number, str(refused), **forms)
    return None


@bp.post("/tickets/<number>/sign")
@require_role(Role.DEPARTMENT)
def sign(number: str) -> ResponseReturnValue:
    def step(session: Session, ticket: Ticket, department_id: int) -> object:
        return dispatch.sign(
            session, ticket, department_id, actor_id=current_user.id, source=request.remote_addr or ""
        )

    refused = _act(number, step)
    if refused is not None:
        return refused
    flash("已签收", "info")
    return redirect(url_for("dept.ticket", number=number), 303)


@bp.post("/tickets/<number>/reply")
@require_role(Role.DEPARTMENT)
def reply(number: str) -> ResponseReturnValue:
    department_id = _department_id()
    form = ReplyForm()
    with _db()() as session:
        inbox.find(session, department_id, number) or _not_found()
    if not form.validate():
        return _refused(number, "请检查填写的内容", 400, reply_form=form)
    uploads = [f for f in request.files.getlist(form.files.name) if f.filename]
    if len(uploads) > attachments.MAX_FILES:
        return _refused(
            number, f"附件最多 {attachments.MAX_FILES} 个，本次未保存任何内容", 400, reply_form=form
        )
    received: list[attachments.Received] = []

    def step(session: Session, ticket: Ticket, department_id: int) -> object:
        now = utcnow()
        event = dispatch.reply(
            session,
            ticket,
            department_id,
            form.reply_text.data,
            actor_id=current_user.id,
            now=now,
            source=request.remote_addr or "",
        )
        session.flush()
        return attachments.store(
            session,
            received,
            _attachments_root(),
            ticket_id=ticket.id,
            department_id=department_id,
            event_id=event.id,
            uploaded_by_id=current_user.id,
            now=now,
        )

    try:
        # Files are checked before the ticket is locked: a bad one stops the reply early.
        for upload in uploads:
            received.append(attachments.receive(upload.stream, upload.filename or "", _attachments_root()))
        refused = _act(number, step, reply_form=form)
    except attachments.AttachmentError as error:
        return _refused(number, f"{error}。本次答复未提交，请修改后重新提交", 400, reply_form=form)
    finally:
        attachments.discard(received)  # whatever was not stored (the stored ones were moved)
    if refused is not None:
        return refused
    flash(f"已提交办理结果{f'（附件 {len(received)} 个）' if received else ''}", "info")
    return redirect(url_for("dept.ticket", number=number), 303)


@bp.post("/tickets/<number>/return")
@require_role(Role.DEPARTMENT)
def return_(number: str) -> ResponseReturnValue:
    form = ReturnForm()
    if not form.validate():
        return _refused(number, "请填写退单理由", 400, return_form=form)

    def step(session: Session, ticket: Ticket, department_id: int) -> object:
        return dispatch.return_(
            session,
            ticket,
            department_id,
            form.return_reason.data,
            actor_id=current_user.id,
            source=request.remote_addr or "",
        )

    refused = _act(number, step, return_form=form)
    if refused is not None:
        return refused
    flash("已退单，等待中心审核改派", "info")
    return redirect(url_for("dept.ticket", number=number), 303)


@bp.post("/tickets/<number>/extension")
@require_role(Role.DEPARTMENT)
def extension(number: str) -> ResponseReturnValue:
    form = ExtensionForm()
    if not form.validate():
        return _refused(number, "请填写延期理由和新的办结日期", 400, extension_form=form)
    proposed: dt.date = form.extension_date.data

    def step(session: Session, ticket: Ticket, department_id: int) -> object:
        return dispatch.request_extension(
            session,
            ticket,
            department_id,
            form.extension_reason.data,
            proposed,
            actor_id=current_user.id,
            policy=_policy(),
            source=request.remote_addr or "",
        )

    refused = _act(number, step, extension_form=form)
    if refused is not None:
        return refused
    flash(f"已申请延期至 {proposed.isoformat()}，等待中心审核", "info")
    return redirect(url_for("dept.ticket", number=number), 303)


@bp.get("/tickets/<number>/files/<int:attachment_id>")
@require_role(Role.DEPARTMENT)
def attachment(number: str, attachment_id: int) -> ResponseReturnValue:
    department_id = _department_id()
    with transaction(_db()) as session:
        ticket, _share = inbox.find(session, department_id, number) or _not_found()
        file = session.get(Attachment, attachment_id)
        if file is None or file.ticket_id != ticket.id:
            abort(404)
        audit(
            session,
            "attachment.download",
            actor_id=current_user.id,
            target_type="attachment",
            target_id=file.id,
            detail={"ticket": number},
            source=request.remote_addr or "",
        )
        path = attachments.file_of(file, _attachments_root())
        name, content_type = file.filename, file.content_type
    # Always a download: an uploaded file is never rendered by the browser as our page.
    return send_file(path, mimetype=content_type, as_attachment=True, download_name=name)
