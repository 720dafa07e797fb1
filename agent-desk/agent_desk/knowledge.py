"""The knowledge base pages: agents search it; supervisors write, review, publish and retire articles."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.accounts import Role, require_role
from hotline.db import transaction
from tickets import knowledge
from tickets.knowledge import Article, ArticleAction, ArticleState, KnowledgeError

knowledge_bp = Blueprint("knowledge", __name__, template_folder="templates", url_prefix="/knowledge")

STATE_LABELS = {
    ArticleState.DRAFT: "草稿",
    ArticleState.IN_REVIEW: "待审核",
    ArticleState.PUBLISHED: "已发布",
    ArticleState.EXPIRED: "已失效",
}
ACTION_LABELS = {
    ArticleAction.SUBMIT: "提交审核",
    ArticleAction.APPROVE: "审核通过并发布",
    ArticleAction.REJECT: "退回修改",
    ArticleAction.EXPIRE: "设为失效",
    ArticleAction.REVISE: "修订",
}


def _db() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["hotline"]["db"]
    return factory


@knowledge_bp.get("/search")
@require_role(Role.AGENT, Role.SUPERVISOR, Role.ADMIN)
def search() -> ResponseReturnValue:
    """For the desk: published, valid articles matching every word typed."""
    with _db()() as session:
        found = knowledge.search(session, request.args.get("q", "")[:100])
        return jsonify(
            articles=[{"id": a.id, "title": a.title, "body": a.body, "keywords": a.keywords} for a in found]
        )


@knowledge_bp.get("/")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def manage() -> ResponseReturnValue:
    with _db()() as session:
        articles = session.scalars(select(Article).order_by(Article.updated_at.desc())).all()
        actions = {
            a.id: [act for (state, act) in knowledge.TRANSITIONS if state is a.state] for a in articles
        }
        return render_template(
            "desk/knowledge.html",
            articles=articles,
            actions=actions,
            states=STATE_LABELS,
            labels=ACTION_LABELS,
        )


@knowledge_bp.post("/")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def create() -> ResponseReturnValue:
    form = request.form
    valid_until = None
    if form.get("valid_until"):
        try:
            day = dt.date.fromisoformat(form["valid_until"])
            valid_until = dt.datetime.combine(day, dt.time(16, 0), dt.UTC)  # end of the day in Shanghai
        except ValueError:
            flash("有效期日期格式不正确", "error")
            return redirect(url_for("knowledge.manage"))
    try:
        with transaction(_db()) as session:
            knowledge.write(
                session,
                title=form.get("title", ""),
                body=form.get("body", ""),
                keywords=form.get("keywords", ""),
                author_id=current_user.id,
                valid_until=valid_until,
            )
    except KnowledgeError as exc:
        flash(str(exc), "error")
    else:
        flash("知识条目已保存为草稿", "info")
    return redirect(url_for("knowledge.manage"))


@knowledge_bp.post("/<int:article_id>/<action>")
@require_role(Role.SUPERVISOR, Role.ADMIN)
def act(article_id: int, action: str) -> ResponseReturnValue:
    try:
        chosen = ArticleAction(action)
        with transaction(_db()) as session:
            article = session.get(Article, article_id)
            if article is None:
                raise KnowledgeError("知识条目不存在")
            knowledge.act(session, article, chosen, current_user.id)
    except ValueError:
        flash("未知的操作", "error")
    except KnowledgeError as exc:
        flash(str(exc), "error")
    else:
        flash(f"已{ACTION_LABELS[chosen]}", "info")
    return redirect(url_for("knowledge.manage"))
