"""Category codes and the ranking of dispatch-catalog rules for one request (no I/O).

Codes have the GB/T 39666-2020 shape: three levels of two digits, a level's digits zero when the
category stops above it (`010000` 城乡建设 > `010100` 市政设施 > `010101` 路灯). A rule names a
category at any level and covers everything below it; it may add a district and keywords, and a
rule with keywords applies only when one of them occurs in the citizen's words. More specific
rules rank first: a deeper category, then a named district, then more keyword hits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_CODE = re.compile(r"^(\d\d)(\d\d)(\d\d)$")


def code_level(code: str) -> int:
    """1, 2 or 3; `ValueError` for anything that is not a well-formed code."""
    match = _CODE.match(code)
    if match is None or match[1] == "00":
        raise ValueError(f"category code {code!r} must be 6 digits, e.g. 010101")
    if match[2] == "00":
        if match[3] != "00":
            raise ValueError(f"category code {code!r} skips its second level")
        return 1
    return 2 if match[3] == "00" else 3


def ancestors(code: str) -> list[str]:
    """The code and the codes above it, most specific first: 010101 -> [010101, 010100, 010000]."""
    level = code_level(code)
    found = [code[:2] + "0000"]
    if level >= 2:
        found.insert(0, code[:4] + "00")
    if level == 3:
        found.insert(0, code)
    return found


def parent(code: str) -> str | None:
    chain = ancestors(code)
    return chain[1] if len(chain) > 1 else None


def split_keywords(text: str) -> tuple[str, ...]:
    """Keywords as an administrator types them: separated by spaces, commas or 、."""
    return tuple(word for word in re.split(r"[\s,，、;；]+", text) if word)


@dataclass(frozen=True)
class Rule:
    id: int
    category_code: str
    district: str
    keywords: tuple[str, ...]
    lead_department_id: int
    assist_department_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Match:
    rule: Rule
    depth: int  # the level of the rule's category: 3 for a leaf
    district_hit: bool
    keyword_hits: tuple[str, ...]

    @property
    def sort_key(self) -> tuple[int, int, int, int]:
        return (-self.depth, -int(self.district_hit), -len(self.keyword_hits), self.rule.id)


def match(rule: Rule, category_code: str, district: str, text: str) -> Match | None:
    """How `rule` applies to a request, or None when it does not."""
    chain = ancestors(category_code)
    if rule.category_code not in chain:
        return None
    if rule.district and rule.district != district:
        return None
    hits = tuple(word for word in rule.keywords if word in text)
    if rule.keywords and not hits:
        return None
    return Match(rule, code_level(rule.category_code), bool(rule.district), hits)


def rank(rules: Iterable[Rule], category_code: str, district: str, text: str) -> list[Match]:
    """Every applying rule, most specific first, one per lead department (its best rule)."""
    matches = [m for rule in rules if (m := match(rule, category_code, district, text)) is not None]
    best: dict[int, Match] = {}
    for found in sorted(matches, key=lambda m: m.sort_key):
        best.setdefault(found.rule.lead_department_id, found)
    return list(best.values())
