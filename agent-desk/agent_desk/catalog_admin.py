"""Administration of the dispatch catalog (派单目录): list, add, edit, disable and enable rules.

The rules and their checks are `tickets.catalog_edit`; this module reads forms and shows pages.
A refused entry comes back with the reason and what was typed.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.accounts import Role, require_role
from hotline.db import transaction
from tickets import catalog, catalog_edit
from tickets.catalog_edit import CatalogError, RuleInput
from tickets.models import Category, Department, DispatchRule

catalog_bp = Blueprint("catalog_admin", __name__, template_folder="templates", url_prefix="/admin/catalog")


def _db() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    return factory


def _source() -> str:
    return request.remote_addr or ""


def _typed() -> RuleInput:
    form = request.form
    lead = form.get("lead_department_id", "")
    return RuleInput(
        category_code=form.get("category_code", "")[:6],
        lead_department_id=int(lead) if lead.isdigit() else None,
        district=form.get("district", "")[:64],
        keywords=form.get("keywords", "")[:400],
        assist_department_ids=tuple(int(d) for d in form.getlist("assist_department_ids") if d.isdigit()),
        note=form.get("note", "")[:400],
    )


def _page(session: Session, editing: DispatchRule | None = None, status: int = 200) -> ResponseReturnValue:
    rules = session.scalars(
        select(DispatchRule).order_by(DispatchRule.category_code, DispatchRule.district, DispatchRule.id)
    ).all()
    departments = session.scalars(select(Department).order_by(Department.id)).all()
    categories = session.scalars(select(Category).where(Category.active).order_by(Category.code)).all()
    page = render_template(
        "desk/catalog_admin.html",
        rules=rules,
        editing=editing,
        fingerprint=catalog_edit.fingerprint,
        names={d.id: d.name for d in departments},
        departments=[d for d in departments if d.active],
        categories=[(c.code, catalog.category_label(session, c.code)) for c in categories],
        category_names={c.code: c.name for c in categories},
        districts=catalog_edit.districts(session),
        typed=request.form if request.method == "POST" else None,
    )
    return page, status


@catalog_bp.get("/")
@require_role(Role.ADMIN)
def index() -> ResponseReturnValue:
    with _db()() as session:
        return _page(session)


@catalog_bp.get("/<int:rule_id>")
@require_role(Role.ADMIN)
def edit_form(rule_id: int) -> ResponseReturnValue:
    with _db()() as session:
        rule = session.get(DispatchRule, rule_id) or abort(404)
        return _page(session, rule)


def _refused(error: CatalogError, rule_id: int | None = None) -> ResponseReturnValue:
    with _db()() as session:
        flash(str(error), "error")
        editing = session.get(DispatchRule, rule_id) if rule_id is not None else None
        return _page(session, editing, 400)


@catalog_bp.post("/")
@require_role(Role.ADMIN)
def add() -> ResponseReturnValue:
    try:
        with transaction(_db()) as session:
            rule = catalog_edit.add(session, _typed(), actor_id=current_user.id, source=_source())
            rule_id = rule.id
    except CatalogError as error:
        return _refused(error)
    flash(f"已添加目录条目 #{rule_id}", "info")
    return redirect(url_for("catalog_admin.index"), 303)


@catalog_bp.post("/<int:rule_id>")
@require_role(Role.ADMIN)
def edit(rule_id: int) -> ResponseReturnValue:
    seen = request.form.get("fingerprint", "")
    try:
        with transaction(_db()) as session:
            catalog_edit.edit(session, rule_id, _typed(), seen, actor_id=current_user.id, source=_source())
    except CatalogError as error:
        return _refused(error, rule_id)
    flash(f"已保存目录条目 #{rule_id}", "info")
    return redirect(url_for("catalog_admin.index"), 303)


@catalog_bp.post("/<int:rule_id>/active")
@require_role(Role.ADMIN)
def set_active(rule_id: int) -> ResponseReturnValue:
    active = request.form.get("active") == "1"
    seen = request.form.get("fingerprint", "")
    try:
        with transaction(_db()) as session:
            catalog_edit.set_active(
                session, rule_id, active, seen, actor_id=current_user.id, source=_source()
            )
    except CatalogError as error:
        return _refused(error)
    flash(f"已{'启用' if active else '停用'}目录条目 #{rule_id}", "info")
    return redirect(url_for("catalog_admin.index"), 303)
