"""Open311 GeoReport v2 documents as JSON or XML (built with xml.etree, never by string pasting)."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Response

from tickets import deadlines

CONTENT_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
# The element name of each member of a list, as the spec's XML examples name them.
_MEMBER = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}


def iso(moment: dt.datetime | None) -> str | None:
    """ISO 8601 with the zone, in local time: 2026-10-09T17:00:00+08:00."""
    return moment.astimezone(deadlines.LOCAL).isoformat(timespec="seconds") if moment else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, member in value.items():
            _fill(ET.SubElement(element, key), member)
    elif isinstance(value, (list, tuple)):
        name = _MEMBER.get(element.tag, "item")
        for member in value:
            _fill(ET.SubElement(element, name), member)
    else:
        element.text = _text(value)


def to_xml(root: str, document: Any) -> bytes:
    """`document` (a list for `services`, `service_requests`, `errors`; a mapping otherwise) as XML."""
    element = ET.Element(root)
    _fill(element, document)
    body: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=True)
    return body


def respond(fmt: str, root: str, document: Any, status: int = 200) -> Response:
    """The document in the asked format; JSON carries the same shape without the root element."""
    if fmt == "json":
        body = json.dumps(document, ensure_ascii=False).encode()
    else:
        body = to_xml(root, document)
    return Response(body, status=status, content_type=CONTENT_TYPES.get(fmt, CONTENT_TYPES["xml"]))


def errors(fmt: str, status: int, descriptions: Sequence[str]) -> Response:
    """The spec's error list: each {code, description}, the code being the HTTP status."""
    document = [{"code": status, "description": text} for text in descriptions]
    return respond(fmt, "errors", document, status)
