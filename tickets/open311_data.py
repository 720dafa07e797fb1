"""Open311 documents from the catalog and the tickets: services, definitions, service requests.

Only tickets that came in through Open311 are readable here: the API has no caller check, so a
phone or portal ticket shown by number would let anyone read what the portal guards with the
phone number. A confidential (保密) request shows its progress but not its text, place or media.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets import catalog, labels, matching, public
from tickets.models import Category, Channel, Department, DispatchRule, RequestKind, Ticket, TicketStatus
from tickets.models_outcomes import Open311Request
from tickets.open311_format import iso

CONFIDENTIAL_NOTICE = "保密诉求：内容与位置不公开"
TRUE_VALUES = {"true", "1", "yes", "是"}

ATTRIBUTES: list[dict[str, Any]] = [
    {
        "variable": True,
        "code": "request_kind",
        "datatype": "singlevaluelist",
        "required": False,
        "datatype_description": "诉求类型，决定办理时限；不填为“求助”",
        "order": 1,
        "description": "诉求类型",
        "values": [{"key": kind.value, "name": name} for kind, name in labels.KIND.items()],
    },
    {
        "variable": True,
        "code": "confidential",
        "datatype": "singlevaluelist",
        "required": False,
        "datatype_description": "保密：承办单位看不到联系人，公开接口不显示内容与位置",
        "order": 2,
        "description": "是否保密",
        "values": [{"key": "false", "name": "否"}, {"key": "true", "name": "是"}],
    },
]


def services(session: Session) -> list[dict[str, Any]]:
    """Every active leaf category as a service (code order)."""
    names = {c.code: c.name for c in session.scalars(select(Category).where(Category.active))}
    keywords: dict[str, list[str]] = {}
    for rule in session.scalars(select(DispatchRule).where(DispatchRule.active)):
        keywords.setdefault(rule.category_code, []).extend(matching.split_keywords(rule.keywords))
    found = []
    for leaf in catalog.leaves(session):
        chain = matching.ancestors(leaf.code)  # leaf, middle, top
        words = [names.get(chain[1], "")] + [w for code in chain for w in keywords.get(code, [])]
        found.append(
            {
                "service_code": leaf.code,
                "service_name": leaf.name,
                "description": " / ".join(names.get(c, "") for c in reversed(chain)),
                "metadata": True,
                "type": "realtime",
                "keywords": ",".join(dict.fromkeys(w for w in words if w)),
                "group": names.get(chain[-1], ""),
            }
        )
    return found


def service(session: Session, code: str) -> Category | None:
    """The active leaf category with this code, if it is one."""
    try:
        level = matching.code_level(code)
    except ValueError:
        return None
    category = session.get(Category, code)
    return category if category is not None and category.active and level == 3 else None


def definition(code: str) -> dict[str, Any]:
    return {"service_code": code, "attributes": ATTRIBUTES}


def request_kind(value: str) -> RequestKind | None:
    try:
        return RequestKind(value) if value else RequestKind.HELP
    except ValueError:
        return None


def visible(session: Session, number: str) -> Ticket | None:
    """The Open311 ticket with this number (others are not found)."""
    return session.scalar(select(Ticket).where(Ticket.number == number, Ticket.channel == Channel.OPEN311))


def document(session: Session, ticket: Ticket) -> dict[str, Any]:
    """One service request in the spec's fields."""
    extra = session.get(Open311Request, ticket.id)
    shown = public.view(session, ticket)
    lead = shown.followed
    notes = shown.reply.text if shown.reply is not None else shown.status
    if lead is not ticket:
        notes = f"已与工单 {lead.number} 合并办理。{notes}"
    names = {c.code: c.name for c in catalog.category_path(session, ticket.category_code)}
    department = session.get(Department, lead.department_id) if lead.department_id is not None else None
    updated = max(ticket.updated_at, lead.updated_at)
    found: dict[str, Any] = {
        "service_request_id": ticket.number,
        "status": "open" if public.is_open(lead.status) else "closed",
        "status_notes": notes,
        "service_name": names.get(ticket.category_code, ""),
        "service_code": ticket.category_code,
        "description": ticket.content,
        "agency_responsible": department.name if department is not None else "",
        "service_notice": "",
        "requested_datetime": iso(ticket.created_at),
        "updated_datetime": iso(updated),
        "expected_datetime": iso(lead.deadline_at) if public.is_open(lead.status) else None,
        "address": ticket.address,
        "address_id": extra.address_id if extra is not None else "",
        "zipcode": None,
        "lat": extra.lat if extra is not None else None,
        "long": extra.long if extra is not None else None,
        "media_url": extra.media_url if extra is not None else "",
    }
    if ticket.confidential:
        found |= {
            "description": "",
            "address": "",
            "address_id": "",
            "lat": None,
            "long": None,
            "media_url": "",
            "service_notice": CONFIDENTIAL_NOTICE,
        }
    return found


def listing(
    session: Session,
    *,
    numbers: list[str] | None,
    codes: list[str],
    start: dt.datetime,
    end: dt.datetime,
    statuses: set[str],
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Service requests by id list, or by codes and time range; newest first."""
    query = select(Ticket).where(Ticket.channel == Channel.OPEN311)
    if numbers is not None:
        query = query.where(Ticket.number.in_(numbers))
    else:
        query = query.where(Ticket.created_at >= start, Ticket.created_at <= end)
        if codes:
            query = query.where(Ticket.category_code.in_(codes))
        # A merged ticket takes its lead's status, so it passes either filter here and is checked below.
        if statuses == {"open"}:
            query = query.where(Ticket.status.not_in(public.CLOSED - {TicketStatus.MERGED}))
        elif statuses == {"closed"}:
            query = query.where(Ticket.status.in_(public.CLOSED))
    query = query.order_by(Ticket.created_at.desc(), Ticket.id.desc())
    found = []
    for ticket in session.scalars(query):
        item = document(session, ticket)
        if numbers is None and statuses and item["status"] not in statuses:
            continue
        found.append(item)
        if len(found) >= limit:
            break
    return found
