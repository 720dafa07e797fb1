"""The category tree, the dispatch catalog's suggestions, duplicate suggestions and merging (并单)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from tickets import catalog, catalog_data, dispatch, duplicates, inbox, matching
from tickets.lifecycle import TransitionError
from tickets.models import Category, Channel, DispatchRule, Ticket, TicketStatus
from tickets.service import create_ticket

NOW = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)


def test_codes_have_the_2_2_2_shape() -> None:
    assert matching.ancestors("010101") == ["010101", "010100", "010000"]
    assert matching.ancestors("010100") == ["010100", "010000"]
    assert matching.parent("010000") is None
    for bad in ("01010", "0101a1", "000101", "010001"):
        with pytest.raises(ValueError):
            matching.code_level(bad)


def test_the_demo_tree_is_seeded_once_with_the_leaves_a_hotline_hears_most(
    db: sessionmaker[Session], departments: dict[str, int]
) -> None:
    with transaction(db) as session:
        again = catalog.seed_catalog(session)  # the fixture seeded it already
        leaves = catalog.leaves(session)
        names = {c.name for c in leaves}
        assert again == {"categories": 0, "rules": 0}
        assert 20 <= len(leaves) <= 40
        for usual in ("路灯", "噪音扰民", "停水", "停电", "燃气供应", "物业服务", "拖欠工资", "食品安全"):
            assert usual in names
        for usual in ("医保报销", "户籍办理", "交通信号与拥堵", "垃圾清运", "违建", "校外培训"):
            assert usual in names
        assert catalog.category_label(session, "010101") == "城乡建设 / 市政设施 / 路灯"
        assert catalog.category_limit(session, "020101") == "24h"  # 停水: from 供水
        assert catalog.category_limit(session, "020302") == "2h"  # a leaf's own limit
        assert catalog.category_limit(session, "050101") == ""
        for category in session.scalars(select(Category)):
            assert matching.code_level(category.code) == category.level
            assert category.parent_code == matching.parent(category.code)
        assert session.scalar(select(func.count()).select_from(DispatchRule)) == len(catalog_data.RULES)


def _leads(session: Session, code: str, district: str = "", text: str = "") -> list[str]:
    return [s.lead.code for s in catalog.suggest(session, code, district, text)]


def test_suggestions_put_the_most_specific_rule_first(
    db: sessionmaker[Session], departments: dict[str, int]
) -> None:
    with db() as session:
        assert _leads(session, "010101") == ["urban-management"]  # 路灯 in the centre
        assert _leads(session, "010101", "盘州市") == ["panzhou", "urban-management"]  # 属地 first
        # 噪音扰民: the words decide between construction, shops and everything else.
        assert _leads(session, "040101", "钟山区", "楼下工地夜间施工打桩") == ["housing", "ecology"]
        assert _leads(session, "040101", "", "商铺门口音响太吵")[0] == "urban-management"
        assert _leads(session, "040101", "", "工厂机器轰鸣") == ["ecology"]
        # 停水 has no rule of its own: the rule on 供水 (one level up) covers it.
        first = catalog.suggest(session, "020101")[0]
        assert first.lead.code == "water-supply" and first.reasons == ("类别：供水",)
        # Lead and assisting departments with readable reasons.
        wages = catalog.suggest(session, "050101", "水城区", "包工头拖欠农民工工资")[0]
        assert wages.lead.name == "市人力资源和社会保障局"
        assert [a.code for a in wages.assists] == ["housing"]
        assert wages.reasons == ("类别：拖欠工资", "关键词：农民工、包工头")
        assert catalog.suggest(session, "100101", "盘州市")[0].reasons == ("类别：户籍证件", "属地：盘州市")
        assert catalog.suggest(session, "100101") == []  # no city-wide rule: the agent decides
        assert catalog.suggest(session, "not-a-code") == []


def test_an_inactive_rule_is_not_suggested(db: sessionmaker[Session], departments: dict[str, int]) -> None:
    with transaction(db) as session:
        rule = session.scalars(select(DispatchRule).where(DispatchRule.category_code == "020201")).one()
        rule.active = False
        session.flush()
        assert catalog.suggest(session, "020201") == []


def _ticket(session: Session, **fields: object) -> Ticket:
    fields.setdefault("now", NOW)
    return create_ticket(session, channel=Channel.PHONE, content="诉求", **fields)  # type: ignore[arg-type]


def test_duplicates_by_caller_or_by_place_and_category_open_ones_first(db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        old = _ticket(
            session, caller_phone="13800000001", category_code="010101", now=NOW - dt.timedelta(days=9)
        )
        closed = _ticket(session, caller_phone="13800000001", category_code="040101")
        closed.status = TicketStatus.CLOSED
        same_place = _ticket(
            session, caller_phone="13900000002", category_code="010101", address="人民路 12 号"
        )
        same_district = _ticket(
            session, category_code="010101", district="钟山区", now=NOW + dt.timedelta(hours=1)
        )
        _ticket(session, category_code="030101", address="人民路 12 号")  # same place, other matter
        session.flush()

        by_phone = duplicates.possible_duplicates(session, caller_phone="13800000001", now=NOW)
        assert [d.ticket.id for d in by_phone] == [closed.id]  # the 9-day-old one is out of the window
        assert by_phone[0].reasons == ("同一来电号码",) and not by_phone[0].open

        found = duplicates.possible_duplicates(
            session, caller_phone="13800000001", category_code="010101", address="人民路 12 号", now=NOW
        )
        assert [d.ticket.id for d in found] == [same_place.id, closed.id]  # open first
        assert found[0].reasons == ("同类诉求、同一地址",)

        in_district = duplicates.possible_duplicates(
            session, category_code="010101", district="钟山区", now=NOW
        )
        assert [d.ticket.id for d in in_district] == [same_district.id]
        assert duplicates.possible_duplicates(session, now=NOW) == []
        assert old.id not in {d.ticket.id for d in in_district}


def test_merged_tickets_follow_their_lead_and_leave_the_department(
    db: sessionmaker[Session], departments: dict[str, int], make_ticket: Callable[..., str]
) -> None:
    lead_no, dup_no, dup2_no = make_ticket(), make_ticket(), make_ticket()
    with transaction(db) as session:
        lead, dup, dup2 = (
            session.scalars(select(Ticket).where(Ticket.number == n)).one()
            for n in (lead_no, dup_no, dup2_no)
        )
        duplicates.merge(session, dup2, dup, note="同一路灯")
        duplicates.merge(session, dup, lead)
        assert dup.status is TicketStatus.MERGED and dup.merged_into_id == lead.id
        assert dup2.merged_into_id == lead.id  # no chains: it follows the lead directly
        assert duplicates.lead_of(session, dup2) is lead
        assert [t.number for t in duplicates.followers(session, lead)] == [dup_no, dup2_no]
        # The department now sees one ticket, not three.
        rows = inbox.listing(session, departments["housing"], inbox.View.ALL, NOW)
        assert [r.ticket.number for r in rows] == [lead_no]
        with pytest.raises(dispatch.DispatchError, match="不能将工单并入自身"):
            duplicates.merge(session, lead, lead)
        with pytest.raises(dispatch.DispatchError, match="已并单"):
            duplicates.merge(session, lead, dup)
        with pytest.raises(TransitionError):
            duplicates.merge(session, dup, lead)  # merged already
