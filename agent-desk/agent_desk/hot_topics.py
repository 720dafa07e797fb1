"""Hot topics (热点): the terms most tickets of a period mention, by Chinese word segmentation.

Ticket search (`tickets.search`) matches substrings with LIKE and needs no segmentation; counting
topics does, since Chinese has no spaces. rjieba (the Rust port of jieba, with jieba's
dictionary built in) splits the title and content into words. The city's own vocabulary (the
category names and dispatch keywords) is added to the dictionary, so that 路灯 stays one word in
路灯不亮. A term counts once per ticket, so one long complaint cannot make a topic; filler words
of hotline speech are left out.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections import Counter
from dataclasses import dataclass

import rjieba
from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets.models import Category, DispatchRule, Ticket

# Words every request contains ("市民反映…希望尽快处理") say nothing about what it is about.
STOPWORDS = frozenset(
    """
    市民 来电 反映 表示 希望 要求 请求 诉求 问题 情况 处理 解决 尽快 帮助 咨询 投诉 建议 举报
    相关 部门 工单 目前 现在 已经 没有 一直 还是 但是 因为 所以 如果 然后 而且 以及 或者 这个
    那个 这些 那些 一个 一下 什么 怎么 如何 是否 可以 能否 需要 进行 存在 导致 出现 造成 我们
    你们 他们 自己 本人 其他 有关 关于 对于 时候 时间 今天 昨天 明天 每天 经常 非常 严重 影响
    多次 发现 无人 不能 不是 不到 知道 告知 回复 联系 电话 办理 工作 人员 单位 地方 附近 问询
    """.split()
)
_TERM = re.compile(r"^[\u4e00-\u9fffA-Za-z][\u4e00-\u9fffA-Za-z0-9]+$")
# High enough that a catalog word beats the general dictionary's longer words around it.
VOCABULARY_FREQ = 20000


@dataclass(frozen=True)
class Topic:
    term: str
    tickets: int  # tickets that mention it
    before: int  # tickets that mentioned it in the period just before (a rising topic shows)


def vocabulary(session: Session) -> frozenset[str]:
    """Category names and dispatch-rule keywords: the words the city itself uses."""
    words = set(session.scalars(select(Category.name)))
    for keywords in session.scalars(select(DispatchRule.keywords)):
        words.update(keywords.split())
    return frozenset(w for w in words if len(w) >= 2)


@functools.lru_cache(maxsize=4)
def segmenter(words: frozenset[str]) -> rjieba.Jieba:
    """A segmenter with `words` added (building one takes about 0.2 s, so it is kept)."""
    jieba = rjieba.Jieba()
    for word in sorted(words):
        jieba.add_word(word, VOCABULARY_FREQ, None)
    return jieba


def terms_of(text: str, words: frozenset[str] = frozenset()) -> set[str]:
    """The distinct meaningful words of one text (two or more characters, no filler)."""
    return {w for w in segmenter(words).cut(text, False) if _TERM.match(w) and w not in STOPWORDS}


def term_counts(
    session: Session, since: dt.datetime, until: dt.datetime, words: frozenset[str]
) -> Counter[str]:
    """How many tickets created in [since, until) mention each term."""
    counts: Counter[str] = Counter()
    rows = session.execute(
        select(Ticket.title, Ticket.content).where(Ticket.created_at >= since, Ticket.created_at < until)
    )
    for title, content in rows:
        counts.update(terms_of(f"{title}\n{content}", words))
    return counts


def hot_topics(session: Session, since: dt.datetime, until: dt.datetime, limit: int = 20) -> list[Topic]:
    """The `limit` terms mentioned by most tickets created in [since, until), most first, each with
    its count in the period of the same length just before."""
    words = vocabulary(session)
    counts = term_counts(session, since, until, words)
    before = term_counts(session, since - (until - since), since, words)
    # Ties in a stable order, so the page and the daily file agree.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [Topic(term, n, before[term]) for term, n in ranked[:limit]]
