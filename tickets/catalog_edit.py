"""Administrators edit the dispatch catalog (派单目录): checked rules, audited changes, no lost edits.

Rules are never deleted: a rule that no longer applies is disabled, so the history of what the
catalog proposed stays readable. `tickets.catalog.suggest` reads only active rules, so agents see
an edit with their next keystroke.

A rule has no version column; an edit carries the fingerprint of the rule as the page showed it,
and the row is locked and compared before writing, so a second administrator's edit made from a
stale page is refused instead of silently overwriting the first one's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hotline.accounts import audit
from tickets import matching
from tickets.models import Category, Department, DepartmentKind, DispatchRule

MAX_KEYWORD_CHARS = 200
MAX_ASSISTS = 5
STALE = "该目录条目已被他人修改，请刷新页面查看最新内容后再操作"


class CatalogError(Exception):
    """An entry that cannot be saved; the message (Chinese) says which field and why."""


@dataclass(frozen=True)
class RuleInput:
    category_code: str
    lead_department_id: int | None
    district: str = ""
    keywords: str = ""
    assist_department_ids: tuple[int, ...] = field(default=())
    note: str = ""


def fingerprint(rule: DispatchRule) -> str:
    """What an edit page showed of a rule; a different value on save means someone changed it."""
    shown = [
        rule.category_code,
        rule.district,
        rule.keywords,
        rule.lead_department_id,
        list(rule.assist_department_ids),
        rule.note,
        rule.active,
    ]
    return hashlib.sha256(json.dumps(shown, ensure_ascii=False).encode()).hexdigest()[:16]


def _values(rule: DispatchRule) -> dict[str, Any]:
    return {
        "category_code": rule.category_code,
        "district": rule.district,
        "keywords": rule.keywords,
        "lead_department_id": rule.lead_department_id,
        "assist_department_ids": list(rule.assist_department_ids),
        "note": rule.note,
        "active": rule.active,
    }


def check(session: Session, data: RuleInput, rule_id: int | None = None, unique: bool = True) -> RuleInput:
    """The entry cleaned up (keywords normalised), or `CatalogError` naming the first problem."""
    code = data.category_code.strip()
    category = session.get(Category, code) if code else None
    if category is None or not category.active:
        raise CatalogError("请选择有效的诉求分类")
    district = data.district.strip()
    if district and district not in districts(session):
        raise CatalogError(f"区县“{district}”不存在")
    words = matching.split_keywords(data.keywords)
    keywords = " ".join(dict.fromkeys(words))
    if len(keywords) > MAX_KEYWORD_CHARS:
        raise CatalogError(f"关键词合计不超过 {MAX_KEYWORD_CHARS} 字")
    active = {d.id for d in session.scalars(select(Department).where(Department.active))}
    if data.lead_department_id not in active:
        raise CatalogError("请选择有效的主办单位")
    assists = tuple(dict.fromkeys(d for d in data.assist_department_ids if d != data.lead_department_id))
    if any(d not in active for d in assists):
        raise CatalogError("协办单位不存在或已停用")
    if len(assists) > MAX_ASSISTS:
        raise CatalogError(f"协办单位最多 {MAX_ASSISTS} 个")
    note = data.note.strip()
    if len(note) > 200:
        raise CatalogError("备注不超过 200 字")
    same = unique and session.scalar(
        select(DispatchRule.id).where(
            DispatchRule.active,
            DispatchRule.category_code == code,
            DispatchRule.district == district,
            DispatchRule.keywords == keywords,
            DispatchRule.id != (rule_id or 0),
        )
    )
    if same:
        # Two active rules with one condition would leave the suggestion to their ids.
        raise CatalogError(f"已有相同分类、区县和关键词的目录条目（#{same}），请修改该条目")
    return RuleInput(code, data.lead_department_id, district, keywords, assists, note)


def districts(session: Session) -> list[str]:
    """The district names a rule may name: the active district departments (as the desk offers)."""
    query = select(Department.name).where(Department.kind == DepartmentKind.DISTRICT, Department.active)
    return list(session.scalars(query.order_by(Department.id)))


def add(session: Session, data: RuleInput, *, actor_id: int, source: str = "") -> DispatchRule:
    clean = check(session, data)
    assert clean.lead_department_id is not None  # checked above
    rule = DispatchRule(
        category_code=clean.category_code,
        district=clean.district,
        keywords=clean.keywords,
        lead_department_id=clean.lead_department_id,
        assist_department_ids=list(clean.assist_department_ids),
        note=clean.note,
        active=True,
    )
    session.add(rule)
    session.flush()
    audit(
        session, "catalog.add", actor_id=actor_id, target_type="dispatch_rule", target_id=rule.id,
        detail={"after": _values(rule)}, source=source,
    )  # fmt: skip
    return rule


def _locked(session: Session, rule_id: int, seen: str) -> DispatchRule:
    rule = session.scalar(select(DispatchRule).where(DispatchRule.id == rule_id).with_for_update())
    if rule is None:
        raise CatalogError("目录条目不存在")
    if seen != fingerprint(rule):
        raise CatalogError(STALE)
    return rule


def edit(
    session: Session, rule_id: int, data: RuleInput, seen: str, *, actor_id: int, source: str = ""
) -> DispatchRule:
    """Change a rule from the page that showed it as `seen` (its fingerprint then)."""
    rule = _locked(session, rule_id, seen)
    # A disabled rule may repeat an active one's condition; enabling it checks again.
    clean = check(session, data, rule_id, unique=rule.active)
    assert clean.lead_department_id is not None
    before = _values(rule)
    rule.category_code, rule.district, rule.keywords = clean.category_code, clean.district, clean.keywords
    rule.lead_department_id = clean.lead_department_id
    rule.assist_department_ids, rule.note = list(clean.assist_department_ids), clean.note
    audit(
        session, "catalog.edit", actor_id=actor_id, target_type="dispatch_rule", target_id=rule.id,
        detail={"before": before, "after": _values(rule)}, source=source,
    )  # fmt: skip
    return rule


def set_active(
    session: Session, rule_id: int, active: bool, seen: str, *, actor_id: int, source: str = ""
) -> DispatchRule:
    """Enable (checked again, as a new entry would be) or disable a rule."""
    rule = _locked(session, rule_id, seen)
    if active and not rule.active:
        check(
            session,
            RuleInput(
                rule.category_code,
                rule.lead_department_id,
                rule.district,
                rule.keywords,
                tuple(rule.assist_department_ids),
                rule.note,
            ),  # fmt: skip
            rule_id,
        )
    rule.active = active
    audit(
        session, "catalog.enable" if active else "catalog.disable", actor_id=actor_id,
        target_type="dispatch_rule", target_id=rule.id, source=source,
    )  # fmt: skip
    return rule
