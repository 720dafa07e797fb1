"""The 12345 centre's pages: review replies and returns, decide extensions, merge duplicates, 催办/督办.

Agents and supervisors work the lists; deciding an extension and 督办 are the supervisor's. Each
step runs through `tickets.steps` (the ticket locked, the page's version checked) and
`tickets.centre` (one event and one audit line per change); a refused step shows the page again
with the reason and what was typed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Call
from hotline.accounts import Role, audit, require_role
from hotline.db import transaction, utcnow
from recordings import transcripts
from tickets import attachments, catalog, centre, deadlines, dispatch, duplicates, inbox, labels, steps
from tickets.lifecycle import WITH_DEPARTMENT
from tickets.models import Attachment, Department, Ticket, TicketEvent, TicketStatus

centre_bp = Blueprint("centre", __name__, template_folder="templates", url_prefix="/centre")

STAFF = (Role.AGENT, Role.SUPERVISOR)
DECISIONS = {"approve": True, "accept": True, "reject": False, "refuse": False}


def _db() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    return factory


def _source() -> str:
    return request.remote_addr or ""


def _not_found() -> NoReturn:
    abort(404)


def _find(number: str) -> Callable[[Session], Ticket | None]:
    def find(session: Session) -> Ticket | None:
        return session.scalar(select(Ticket).where(Ticket.number == number).with_for_update())

    return find


def _decision() -> bool | None:
    return DECISIONS.get(request.form.get("decision", ""))


@centre_bp.get("/")
@require_role(*STAFF)
def index() -> ResponseReturnValue:
    with _db()() as session:
        return render_template(
            "desk/centre_index.html",
            replies=centre.replies_to_review(session),
            returns=centre.returns_to_review(session),
            extensions=centre.extensions_to_decide(session),
            late=centre.overdue_and_supervised(session, utcnow()),
            local=inbox.local,
            labels=labels,
        )


def _page(session: Session, ticket: Ticket, status: int = 200) -> ResponseReturnValue:
    names = centre.department_names(session)
    events = session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.at, TicketEvent.id)
    )
    open_ = ticket.status in duplicates.OPEN
    candidates = (
        duplicates.possible_duplicates(
            session,
            caller_phone=ticket.caller_phone,
            category_code=ticket.category_code,
            district=ticket.district,
            address=ticket.address,
            exclude_id=ticket.id,
            now=utcnow(),
        )
        if open_
        else []
    )
    returned = ticket.status is TicketStatus.RETURNED
    departments = session.scalars(select(Department).where(Department.active).order_by(Department.id))
    page = render_template(
        "desk/centre_ticket.html",
        t=ticket,
        category=catalog.category_label(session, ticket.category_code) if ticket.category_code else "",
        shares=[(a, names.get(a.department_id, "")) for a in dispatch.assignments(session, ticket)],
        events=[(e, names.get(e.department_id or 0, "")) for e in events],
        files=session.scalars(
            select(Attachment).where(Attachment.ticket_id == ticket.id).order_by(Attachment.id)
        ).all(),
        extension=centre.pending_extension(session, ticket),
        suggestions=centre.suggestions_after_return(session, ticket) if returned else [],
        departments=[d for d in departments if d.id != ticket.department_id],
        candidates=[c for c in candidates if c.open],
        followers=duplicates.followers(session, ticket),
        lead=duplicates.lead_of(session, ticket),
        can_remind=ticket.status in WITH_DEPARTMENT,
        can_merge=open_,
        is_supervisor=current_user.role is Role.SUPERVISOR,
        department=names.get(ticket.department_id or 0, ""),
        sign_state=deadlines.state(ticket.sign_deadline_at, utcnow()),
        reply_state=deadlines.state(ticket.deadline_at, utcnow()),
        typed=request.form if request.method == "POST" else {},
        local=inbox.local,
        labels=labels,
        size_label=attachments.size_label,
        # What was said on the call the ticket was written from (智能填单), both speakers.
        transcript=transcripts.for_call(session, ticket.call_id) if ticket.call_id else [],
        # The caller's key in the after-call survey (按键评价) of that call, if the agent sent them.
        survey=SURVEY_LABELS.get(
            session.scalar(select(Call.survey_score).where(Call.call_id == ticket.call_id)) or 0, ""
        )
        if ticket.call_id
        else "",
    )
    return page, status


SURVEY_LABELS = {1: "满意", 2: "基本满意", 3: "不满意"}  # ivr.call_control.SURVEY_KEYS


@centre_bp.get("/tickets/<number>")
@require_role(*STAFF)
def ticket(number: str) -> ResponseReturnValue:
    with transaction(_db()) as session:
        found = session.scalar(select(Ticket).where(Ticket.number == number)) or _not_found()
        audit(
            session, "ticket.view", actor_id=current_user.id, target_type="ticket", target_id=number,
            source=_source(),
        )  # fmt: skip
        return _page(session, found)


def _act(number: str, step: Callable[[Session, Ticket], object], done: str) -> ResponseReturnValue:
    """Take `step` from the version the page showed; back to the page with `done`, or with the reason."""
    try:
        steps.run(_db(), _find(number), request.form.get("version", ""), step)
    except steps.NotFound:
        _not_found()
    except steps.Refused as refused:
        with _db()() as session:
            found = session.scalar(select(Ticket).where(Ticket.number == number)) or _not_found()
            flash(str(refused), "error")
            return _page(session, found, 409)
    flash(done, "info")
    return redirect(url_for("centre.ticket", number=number), 303)


def _note() -> str:
    return request.form.get("note", "")[:1000]


@centre_bp.post("/tickets/<number>/review")
@require_role(*STAFF)
def review(number: str) -> ResponseReturnValue:
    approve = _decision()
    if approve is None:
        abort(400)

    def step(session: Session, ticket: Ticket) -> object:
        return centre.review_reply(
            session, ticket, approve, _note(), actor_id=current_user.id, source=_source()
        )

    return _act(number, step, "审核通过，等待回访" if approve else "已退回承办单位重办")


@centre_bp.post("/tickets/<number>/return-review")
@require_role(*STAFF)
def return_review(number: str) -> ResponseReturnValue:
    accept = _decision()
    if accept is None:
        abort(400)
    chosen = request.form.get("department_id", "")
    to_department = int(chosen) if chosen.isdigit() else None

    def step(session: Session, ticket: Ticket) -> object:
        return centre.review_return(
            session, ticket, accept, _note(), to_department_id=to_department, actor_id=current_user.id,
            source=_source(),
        )  # fmt: skip

    return _act(number, step, "已改派" if accept else "退单理由不成立，已退回原单位继续办理")


@centre_bp.post("/tickets/<number>/extension")
@require_role(Role.SUPERVISOR)
def extension(number: str) -> ResponseReturnValue:
    approve = _decision()
    if approve is None:
        abort(400)

    def step(session: Session, ticket: Ticket) -> object:
        pending = centre.pending_extension(session, ticket)
        if pending is None:
            raise dispatch.DispatchError("该工单没有待审核的延期申请")
        return dispatch.decide_extension(
            session, pending, approve, actor_id=current_user.id, note=_note(), source=_source()
        )

    return _act(number, step, "已同意延期，已告知市民新的办结日期" if approve else "已不同意延期")


@centre_bp.post("/tickets/<number>/merge")
@require_role(*STAFF)
def merge(number: str) -> ResponseReturnValue:
    lead_number = request.form.get("lead", number)
    chosen = set(request.form.getlist("merge")) | {number}

    def step(session: Session, ticket: Ticket) -> object:
        # Locked in number order, so two people merging overlapping groups cannot deadlock.
        rows = session.scalars(
            select(Ticket)
            .where(Ticket.number.in_(chosen | {lead_number}))
            .order_by(Ticket.number)
            .with_for_update()
        ).all()
        found = {t.number: t for t in rows}
        if lead_number not in found:
            raise dispatch.DispatchError(f"主工单 {lead_number} 不存在")
        others = [found[n] for n in sorted(chosen) if n in found and n != lead_number]
        return centre.merge_group(
            session, found[lead_number], others, _note(), actor_id=current_user.id, source=_source()
        )

    return _act(number, step, f"已并单，主工单 {lead_number}")


@centre_bp.post("/tickets/<number>/urge")
@require_role(*STAFF)
def urge(number: str) -> ResponseReturnValue:
    def step(session: Session, ticket: Ticket) -> object:
        return centre.remind(session, ticket, False, _note(), actor_id=current_user.id, source=_source())

    return _act(number, step, "已催办")


@centre_bp.post("/tickets/<number>/supervise")
@require_role(Role.SUPERVISOR)
def supervise(number: str) -> ResponseReturnValue:
    def step(session: Session, ticket: Ticket) -> object:
        return centre.remind(session, ticket, True, _note(), actor_id=current_user.id, source=_source())

    return _act(number, step, "已督办")


@centre_bp.get("/tickets/<number>/files/<int:attachment_id>")
@require_role(*STAFF)
def attachment(number: str, attachment_id: int) -> ResponseReturnValue:
    with transaction(_db()) as session:
        found = session.scalar(select(Ticket).where(Ticket.number == number)) or _not_found()
        file = session.get(Attachment, attachment_id)
        if file is None or file.ticket_id != found.id:
            abort(404)
        audit(
            session, "attachment.download", actor_id=current_user.id, target_type="attachment",
            target_id=file.id, detail={"ticket": number}, source=_source(),
        )  # fmt: skip
        root = current_app.extensions["hotline"]["settings"].var_dir / "attachments"
        path, name, content_type = attachments.file_of(file, root), file.filename, file.content_type
    # Always a download: an uploaded file is never rendered by the browser as our page.
    return send_file(path, mimetype=content_type, as_attachment=True, download_name=name)
