"""The category tree and the dispatch catalog (派单目录) in SQL: seeding, look-ups and suggestions.

The ranking itself is `tickets.matching` (no I/O); this module reads the rules and departments.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets import catalog_data, matching
from tickets.models import Category, Department, DispatchRule
from tickets.table_cache import TableCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DepartmentRef:
    id: int
    code: str
    name: str


@dataclass(frozen=True)
class Suggestion:
    """A department the catalog proposes for a request, with the reasons an agent can read."""

    lead: DepartmentRef
    assists: tuple[DepartmentRef, ...]
    rule_id: int
    reasons: tuple[str, ...]


def seed_catalog(session: Session) -> dict[str, int]:
    """Add the demo category tree and dispatch rules that are missing; returns what was created.

    Run after the departments exist (`hotline.seed`); safe to run again. Rules whose
    departments are missing are skipped with a warning.
    """
    created_categories = 0
    existing = set(session.scalars(select(Category.code)))

    def add(nodes: tuple[catalog_data.Node, ...], prefix: str, parent: str | None, level: int) -> None:
        nonlocal created_categories
        for digits, name, limit, children in nodes:
            code = (prefix + digits).ljust(6, "0")
            if code not in existing:
                session.add(
                    Category(code=code, name=name, parent_code=parent, level=level, reply_limit=limit)
                )
                existing.add(code)
                created_categories += 1
                session.flush()  # parents first: the foreign key on PostgreSQL checks at once
            add(children, prefix + digits, code, level + 1)

    add(catalog_data.TREE, "", None, 1)
    departments = {d.code: d.id for d in session.scalars(select(Department))}
    have = {
        (r.category_code, r.district, r.keywords, r.lead_department_id)
        for r in session.scalars(select(DispatchRule))
    }
    created_rules = 0
    for code, district, keywords, lead, assists, note in catalog_data.RULES:
        missing = [c for c in (lead, *assists) if c not in departments]
        if missing:
            log.warning("dispatch rule %s/%s skipped: no department %s", code, district, missing)
            continue
        if (code, district, keywords, departments[lead]) in have:
            continue
        session.add(
            DispatchRule(
                category_code=code,
                district=district,
                keywords=keywords,
                lead_department_id=departments[lead],
                assist_department_ids=[departments[c] for c in assists],
                note=note,
            )
        )
        created_rules += 1
    session.flush()
    return {"categories": created_categories, "rules": created_rules}


def category_path(session: Session, code: str) -> list[Category]:
    """The category and its ancestors, top first (城乡建设 / 市政设施 / 路灯); [] if unknown."""
    try:
        chain = matching.ancestors(code)
    except ValueError:
        return []
    found = {c.code: c for c in session.scalars(select(Category).where(Category.code.in_(chain)))}
    return [found[c] for c in reversed(chain) if c in found]


def category_label(session: Session, code: str) -> str:
    path = category_path(session, code)
    return " / ".join(c.name for c in path) if path else code


def _reply_limits(session: Session) -> Mapping[str, str]:
    with session.no_autoflush:  # read while a dispatch is half-written: nothing pending is needed
        rows = session.execute(select(Category.code, Category.reply_limit).where(Category.reply_limit != ""))
        return MappingProxyType({code: limit for code, limit in rows})


# Every dispatch asks for its category's limit: kept per process (see tickets.table_cache).
_REPLY_LIMITS = TableCache(Category.__tablename__, _reply_limits)


def category_limit(session: Session, code: str) -> str:
    """The nearest reply-limit override on the category or above it ("" when none)."""
    try:
        chain = matching.ancestors(code)
    except ValueError:
        return ""
    limits = _REPLY_LIMITS.get(session)
    return next((limits[c] for c in chain if c in limits), "")


def leaves(session: Session) -> list[Category]:
    """Active leaf categories in code order (what an agent picks from)."""
    return list(
        session.scalars(select(Category).where(Category.level == 3, Category.active).order_by(Category.code))
    )


def suggest(session: Session, category_code: str, district: str = "", text: str = "") -> list[Suggestion]:
    """The departments the catalog proposes, most specific rule first ([] for an unknown code)."""
    try:
        chain = matching.ancestors(category_code)
    except ValueError:
        return []
    rows = session.scalars(
        select(DispatchRule).where(DispatchRule.active, DispatchRule.category_code.in_(chain))
    ).all()
    rules = [
        matching.Rule(
            id=r.id,
            category_code=r.category_code,
            district=r.district,
            keywords=matching.split_keywords(r.keywords),
            lead_department_id=r.lead_department_id,
            assist_department_ids=tuple(r.assist_department_ids),
        )
        for r in rows
    ]
    ranked = matching.rank(rules, category_code, district, text)
    wanted = {d for m in ranked for d in (m.rule.lead_department_id, *m.rule.assist_department_ids)}
    departments = {
        d.id: DepartmentRef(d.id, d.code, d.name)
        for d in session.scalars(select(Department).where(Department.id.in_(wanted), Department.active))
    }
    names = {c.code: c.name for c in session.scalars(select(Category).where(Category.code.in_(chain)))}
    suggestions = []
    for found in ranked:
        rule = found.rule
        if rule.lead_department_id not in departments:
            continue  # an inactive department is never proposed
        reasons = [f"类别：{names.get(rule.category_code, rule.category_code)}"]
        if found.district_hit:
            reasons.append(f"属地：{rule.district}")
        if found.keyword_hits:
            reasons.append(f"关键词：{'、'.join(found.keyword_hits)}")
        suggestions.append(
            Suggestion(
                lead=departments[rule.lead_department_id],
                assists=tuple(departments[d] for d in rule.assist_department_ids if d in departments),
                rule_id=rule.id,
                reasons=tuple(reasons),
            )
        )
    return suggestions
