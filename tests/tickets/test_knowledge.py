"""The knowledge base: four-eyes publication, expiry, and Chinese substring search for agents."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session, sessionmaker

from hotline.accounts import Role, User
from hotline.db import transaction
from tickets import knowledge
from tickets.knowledge import Article, ArticleAction, ArticleState, KnowledgeError

NOW = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)


def _users(session: Session) -> tuple[int, int]:
    author = User(username="writer", display_name="编辑", role=Role.SUPERVISOR, password_hash="x")
    reviewer = User(username="checker", display_name="审核", role=Role.SUPERVISOR, password_hash="x")
    session.add_all([author, reviewer])
    session.flush()
    return author.id, reviewer.id


def test_an_article_is_published_only_after_another_person_reviews_it(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        author, reviewer = _users(session)
        article = knowledge.write(
            session,
            title="社保卡补办",
            body="携带身份证到市政务服务中心一楼社保窗口办理。",
            keywords="社保 补办 挂失",
            author_id=author,
        )
        assert knowledge.search(session, "社保卡", now=NOW) == []  # a draft is not shown to agents
        knowledge.act(session, article, ArticleAction.SUBMIT, author, now=NOW)
        with pytest.raises(KnowledgeError, match="审核人不能是作者本人"):
            knowledge.act(session, article, ArticleAction.APPROVE, author, now=NOW)
        knowledge.act(session, article, ArticleAction.APPROVE, reviewer, now=NOW)
        assert article.state is ArticleState.PUBLISHED and article.reviewer_id == reviewer
        with pytest.raises(KnowledgeError):
            knowledge.act(session, article, ArticleAction.SUBMIT, author, now=NOW)


def _published(session: Session, author: int, reviewer: int, title: str, body: str, **kw: object) -> Article:
    article = knowledge.write(session, title=title, body=body, author_id=author, **kw)  # type: ignore[arg-type]
    knowledge.act(session, article, ArticleAction.SUBMIT, author, now=NOW)
    knowledge.act(session, article, ArticleAction.APPROVE, reviewer, now=NOW)
    return article


def test_search_finds_every_word_as_a_substring_title_first(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        author, reviewer = _users(session)
        body_hit = _published(session, author, reviewer, "医保报销", "异地就医后社保卡结算不了怎么办")
        title_hit = _published(session, author, reviewer, "社保卡补办", "到政务服务中心办理")
        _published(session, author, reviewer, "公积金提取", "租房提取公积金的材料")
        found = knowledge.search(session, "社保卡", now=NOW)
        assert [a.id for a in found] == [title_hit.id, body_hit.id]
        assert [a.id for a in knowledge.search(session, "社保卡 补办", now=NOW)] == [title_hit.id]
        assert knowledge.search(session, "100%", now=NOW) == []  # wildcards are literal


def test_outdated_articles_expire_and_disappear_from_search(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        author, reviewer = _users(session)
        old = _published(
            session,
            author,
            reviewer,
            "2026年供暖时间",
            "11月15日起供暖",
            valid_until=NOW - dt.timedelta(days=1),
        )
        assert knowledge.search(session, "供暖", now=NOW) == []  # past its validity: hidden at once
        assert knowledge.expire_outdated(session, now=NOW) == 1
        assert old.state is ArticleState.EXPIRED
        knowledge.act(session, old, ArticleAction.REVISE, author, now=NOW)
        assert old.state is ArticleState.DRAFT and old.version == 2
