"""The knowledge base (知识库) agents answer enquiries from, with the GB/T 44191 lifecycle.

`draft → in_review → published → expired`, back to draft for a revision. A reviewer other than
the author approves publication (four eyes); a published article past its `valid_until` date no
longer shows to agents. Search matches every word of the query as a substring of the title,
keywords or body (Chinese has no spaces between words, so substrings are what agents type),
published articles only, best title matches first.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Integer, String, Text, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from hotline.accounts import audit, str_enum
from hotline.db import Base, UTCDateTime, utcnow


class ArticleState(enum.StrEnum):
    DRAFT = "draft"  # 草稿
    IN_REVIEW = "in_review"  # 待审核
    PUBLISHED = "published"  # 已发布
    EXPIRED = "expired"  # 已失效


class ArticleAction(enum.StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    EXPIRE = "expire"
    REVISE = "revise"


TRANSITIONS = {
    (ArticleState.DRAFT, ArticleAction.SUBMIT): ArticleState.IN_REVIEW,
    (ArticleState.IN_REVIEW, ArticleAction.APPROVE): ArticleState.PUBLISHED,
    (ArticleState.IN_REVIEW, ArticleAction.REJECT): ArticleState.DRAFT,
    (ArticleState.PUBLISHED, ArticleAction.EXPIRE): ArticleState.EXPIRED,
    (ArticleState.PUBLISHED, ArticleAction.REVISE): ArticleState.DRAFT,
    (ArticleState.EXPIRED, ArticleAction.REVISE): ArticleState.DRAFT,
}


class KnowledgeError(Exception):
    """An article action that its state or the four-eyes rule does not allow."""


class Article(Base):
    __tablename__ = "knowledge_articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    keywords: Mapped[str] = mapped_column(String(400), default="")
    category_code: Mapped[str] = mapped_column(String(6), default="")
    state: Mapped[ArticleState] = mapped_column(
        str_enum(ArticleState), default=ArticleState.DRAFT, index=True
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


def write(
    session: Session,
    *,
    title: str,
    body: str,
    author_id: int,
    keywords: str = "",
    category_code: str = "",
    valid_until: dt.datetime | None = None,
) -> Article:
    if not title.strip() or not body.strip():
        raise KnowledgeError("标题和正文不能为空")
    article = Article(
        title=title.strip()[:200],
        body=body.strip(),
        keywords=keywords.strip()[:400],
        category_code=category_code,
        author_id=author_id,
        valid_until=valid_until,
    )
    session.add(article)
    session.flush()
    audit(session, "knowledge.write", actor_id=author_id, target_type="article", target_id=article.id)
    return article


def act(
    session: Session, article: Article, action: ArticleAction, actor_id: int, now: dt.datetime | None = None
) -> None:
    """Move an article through its lifecycle; the reviewer must not be its author."""
    now = now or utcnow()
    target = TRANSITIONS.get((article.state, action))
    if target is None:
        raise KnowledgeError(f"知识条目处于“{article.state.value}”状态，不能执行“{action.value}”")
    if action in (ArticleAction.APPROVE, ArticleAction.REJECT) and actor_id == article.author_id:
        raise KnowledgeError("审核人不能是作者本人")
    if action is ArticleAction.APPROVE:
        article.reviewer_id = actor_id
        article.published_at = now
    if action is ArticleAction.REVISE:
        article.version += 1
        article.reviewer_id = None
    article.state = target
    article.updated_at = now
    audit(
        session,
        f"knowledge.{action.value}",
        actor_id=actor_id,
        target_type="article",
        target_id=article.id,
        detail={"state": target.value, "version": article.version},
    )


def expire_outdated(session: Session, now: dt.datetime | None = None) -> int:
    """Published articles past their validity become expired; returns how many."""
    now = now or utcnow()
    outdated = session.scalars(
        select(Article).where(Article.state == ArticleState.PUBLISHED, Article.valid_until < now)
    ).all()
    for article in outdated:
        article.state = ArticleState.EXPIRED
        article.updated_at = now
        audit(session, "knowledge.expire", target_type="article", target_id=article.id, source="schedule")
    return len(outdated)


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search(session: Session, query: str, now: dt.datetime | None = None, limit: int = 20) -> list[Article]:
    """Published, still valid articles containing every word of the query; title hits first."""
    now = now or utcnow()
    words = [w for w in query.split() if w]
    if not words:
        return []
    statement = select(Article).where(
        Article.state == ArticleState.PUBLISHED,
        or_(Article.valid_until.is_(None), Article.valid_until >= now),
    )
    for word in words:
        pattern = _like(word)
        statement = statement.where(
            or_(
                Article.title.like(pattern, escape="\\"),
                Article.keywords.like(pattern, escape="\\"),
                Article.body.like(pattern, escape="\\"),
            )
        )
    found = session.scalars(statement.limit(500)).all()

    def rank(article: Article) -> tuple[int, int, int]:
        in_title = sum(w in article.title for w in words)
        in_keywords = sum(w in article.keywords for w in words)
        return (-in_title, -in_keywords, -article.id)

    return sorted(found, key=rank)[:limit]
