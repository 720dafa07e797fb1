"""The department portal: own tickets only (404 for others), masking, actions, attachments, errors."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zlib
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from hotline.accounts import AuditEntry
from hotline.settings import Settings
from tickets import dept_portal, dispatch
from tickets.models import Attachment, Ticket, TicketEvent, TicketStatus

Login = Callable[[str], FlaskClient]


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


PNG = _png()
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _ticket(db: sessionmaker[Session], number: str) -> Ticket:
    with db() as session:
        return session.scalars(select(Ticket).where(Ticket.number == number)).one()


def _events(db: sessionmaker[Session], number: str) -> list[str]:
    with db() as session:
        query = (
            select(TicketEvent.action).join(Ticket).where(Ticket.number == number).order_by(TicketEvent.id)
        )
        return list(session.scalars(query))


def test_the_list_shows_only_own_tickets_with_deadlines_overdue_highlighted_and_reporters_masked(
    login: Login, make_ticket: Callable[..., str]
) -> None:
    overdue = make_ticket("housing", now=dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC))
    fresh = make_ticket("housing", caller_phone="13912345678", caller_name="欧阳娜娜")
    elsewhere = make_ticket("water-supply", content="停水两天了", category_code="020101")
    page = login("dept-housing").get("/dept/").get_data(as_text=True)
    assert overdue in page and fresh in page and elsewhere not in page
    assert page.count('<tr class="overdue">') == 1 and "已超期" in page
    assert "2026-01-06 23:59" in page  # the sign deadline, shown in Asia/Shanghai
    assert "138****1234" in page and "13800001234" not in page
    assert "欧***" in page and "欧阳娜娜" not in page
    assert "13912345678" not in page


def test_another_departments_ticket_is_404_on_every_route_and_stays_untouched(
    db: sessionmaker[Session], login: Login, make_ticket: Callable[..., str], settings: Settings
) -> None:
    theirs = make_ticket("water-supply", content="停水两天了", category_code="020101")
    mine = make_ticket("housing")
    water = login("dept-water-supply")
    water.post(f"/dept/tickets/{theirs}/sign", data={"csrf_token": _token(water, theirs)})
    reply = water.post(
        f"/dept/tickets/{theirs}/reply",
        data={
            "csrf_token": _token(water, theirs),
            "reply_text": "已恢复供水",
            "files": (io.BytesIO(PDF), "单.pdf"),
        },
    )
    assert reply.status_code == 303
    with db() as session:
        file_id = session.scalars(select(Attachment.id)).one()
    before = _events(db, theirs)

    housing = login("dept-housing")
    token = _token(housing, mine)
    attempts = [
        housing.get(f"/dept/tickets/{theirs}"),
        housing.get(f"/dept/tickets/{theirs}/files/{file_id}"),
        housing.get(f"/dept/tickets/{mine}/files/{file_id}"),  # another ticket's file through my ticket
        housing.post(f"/dept/tickets/{theirs}/sign", data={"csrf_token": token}),
        housing.post(f"/dept/tickets/{theirs}/reply", data={"csrf_token": token, "reply_text": "x"}),
        housing.post(f"/dept/tickets/{theirs}/return", data={"csrf_token": token, "return_reason": "x"}),
        housing.post(
            f"/dept/tickets/{theirs}/extension",
            data={"csrf_token": token, "extension_reason": "x", "extension_date": "2026-12-31"},
        ),
    ]
    assert [r.status_code for r in attempts] == [404] * len(attempts)
    unknown = housing.get("/dept/tickets/20990101-0001")
    assert (
        unknown.status_code == 404 and unknown.get_data() == attempts[0].get_data()
    )  # nothing to tell apart
    assert _events(db, theirs) == before


def test_centre_staff_and_strangers_do_not_get_in(app: Flask, login: Login) -> None:
    assert login("agent1").get("/dept/").status_code == 403
    response = app.test_client().get("/dept/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def _token(client: FlaskClient, number: str) -> str:
    page = client.get(f"/dept/tickets/{number}").get_data(as_text=True)
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_signing_twice_shows_a_clear_error_and_records_one_signature(
    db: sessionmaker[Session], login: Login, make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("housing")
    client = login("dept-housing")
    token = _token(client, number)
    first = client.post(f"/dept/tickets/{number}/sign", data={"csrf_token": token})
    assert first.status_code == 303
    assert "已签收" in client.get(first.headers["Location"]).get_data(as_text=True)
    again = client.post(f"/dept/tickets/{number}/sign", data={"csrf_token": token})  # a double submit
    assert again.status_code == 409
    assert "工单当前状态为“已签收”，不能签收" in again.get_data(as_text=True)
    assert _events(db, number) == ["accept", "dispatch", "sign"]
    with db() as session:
        assert session.scalar(select(func.count()).where(AuditEntry.action == "ticket.sign")) == 1
        assert session.scalar(select(func.count()).where(AuditEntry.action == "ticket.view")) >= 1


def test_a_reply_with_attachments_keeps_every_file_by_its_sha256(
    db: sessionmaker[Session], login: Login, make_ticket: Callable[..., str], settings: Settings
) -> None:
    number = make_ticket("housing")
    client = login("dept-housing")
    client.post(f"/dept/tickets/{number}/sign", data={"csrf_token": _token(client, number)})
    response = client.post(
        f"/dept/tickets/{number}/reply",
        data={
            "csrf_token": _token(client, number),
            "reply_text": "已更换灯泡，路灯恢复照明",
            "files": [(io.BytesIO(PNG), "现场照片.png"), (io.BytesIO(PDF), "../../维修单.pdf")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "已提交办理结果（附件 2 个）" in page and "现场照片.png" in page and "维修单.pdf" in page
    assert _ticket(db, number).status is TicketStatus.REPLIED
    root = settings.var_dir / "attachments"
    with db() as session:
        files = session.scalars(select(Attachment).order_by(Attachment.id)).all()
    assert [(f.filename, f.content_type) for f in files] == [
        ("现场照片.png", "image/png"),
        ("维修单.pdf", "application/pdf"),
    ]
    for stored, content in zip(files, (PNG, PDF), strict=True):
        assert stored.sha256 == hashlib.sha256(content).hexdigest() and stored.size == len(content)
        assert (root / stored.path).read_bytes() == content
    with client.get(f"/dept/tickets/{number}/files/{files[0].id}") as download:
        assert download.status_code == 200 and download.data == PNG
        assert download.headers["Content-Type"] == "image/png"
        assert download.headers["Content-Disposition"].startswith("attachment")
    assert list((root / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("大图.png", PNG + b"\x00" * (10 * 1024 * 1024), "“大图.png”超过 10 MB 的大小上限"),
        ("程序.exe", b"MZ\x90\x00", "“程序.exe”的文件类型不允许，仅支持 JPG、PNG、PDF、Word、Excel"),
        ("照片.png", PNG[:40], "“照片.png”的内容与文件类型不符或文件不完整"),  # cut off mid-upload
        ("假的.pdf", PNG, "“假的.pdf”的内容与文件类型不符"),
        ("空.pdf", b"", "“空.pdf”是空文件或上传不完整"),
    ],
)
def test_a_bad_upload_is_refused_clearly_and_loses_nothing_else(
    db: sessionmaker[Session],
    login: Login,
    make_ticket: Callable[..., str],
    settings: Settings,
    name: str,
    content: bytes,
    message: str,
) -> None:
    number = make_ticket("housing")
    client = login("dept-housing")
    client.post(f"/dept/tickets/{number}/sign", data={"csrf_token": _token(client, number)})
    text = "已派人维修，预计明天修复"
    response = client.post(
        f"/dept/tickets/{number}/reply",
        data={
            "csrf_token": _token(client, number),
            "reply_text": text,
            "files": [(io.BytesIO(PDF), "好的.pdf"), (io.BytesIO(content), name)],
        },
        content_type="multipart/form-data",
    )
    response.request.environ["wsgi.input"].close()  # the test client spools a big body to a file
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in page and "本次答复未提交" in page
    assert f"{text}</textarea>" in page  # what was typed is still there
    assert _ticket(db, number).status is TicketStatus.SIGNED
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Attachment)) == 0
    assert list((settings.var_dir / "attachments" / "tmp").iterdir()) == []


def test_an_oversized_request_is_cut_off_with_a_message(
    db: sessionmaker[Session], login: Login, make_ticket: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dept_portal, "MAX_REQUEST_BYTES", 64 * 1024)
    number = make_ticket("housing")
    client = login("dept-housing")
    client.post(f"/dept/tickets/{number}/sign", data={"csrf_token": _token(client, number)})
    response = client.post(
        f"/dept/tickets/{number}/reply",
        data={
            "csrf_token": _token(client, number),
            "reply_text": "结果",
            "files": (io.BytesIO(b"%PDF" * 50_000), "a.pdf"),
        },
        content_type="multipart/form-data",
        headers={"Referer": f"/dept/tickets/{number}"},
    )
    assert response.status_code == 303
    assert "上传内容合计超过" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert _ticket(db, number).status is TicketStatus.SIGNED


def test_a_confidential_ticket_never_shows_the_reporter_and_a_callback_shows_the_full_number(
    login: Login, make_ticket: Callable[..., str]
) -> None:
    secret = make_ticket("housing", confidential=True, callback_required=True, caller_name="李四")
    callback = make_ticket("housing", callback_required=True, caller_phone="13700007777", caller_name="王五")
    client = login("dept-housing")
    listing = client.get("/dept/").get_data(as_text=True)
    detail = client.get(f"/dept/tickets/{secret}").get_data(as_text=True)
    for page in (listing, detail):
        assert (
            "李四" not in page
            and "李*" not in page
            and "13800001234" not in page
            and "138****1234" not in page
        )
    assert "保密工单：来电人信息不向承办单位提供" in detail
    shown = client.get(f"/dept/tickets/{callback}").get_data(as_text=True)
    assert "王五 13700007777" in shown and "需承办单位直接回复来电人" in shown


def test_return_and_extension_from_the_portal(
    db: sessionmaker[Session], login: Login, make_ticket: Callable[..., str]
) -> None:
    returned, extended = make_ticket("housing"), make_ticket("housing")
    client = login("dept-housing")
    empty = client.post(f"/dept/tickets/{returned}/return", data={"csrf_token": _token(client, returned)})
    assert empty.status_code == 400 and "请填写退单理由" in empty.get_data(as_text=True)
    done = client.post(
        f"/dept/tickets/{returned}/return",
        data={"csrf_token": _token(client, returned), "return_reason": "路灯由城市管理部门维护"},
    )
    assert done.status_code == 303 and _ticket(db, returned).status is TicketStatus.RETURNED
    assert "已退单，等待中心审核改派" in client.get(done.headers["Location"]).get_data(as_text=True)

    deadline = _ticket(db, extended).deadline_at
    assert deadline is not None
    proposed = deadline.date() + dt.timedelta(days=1)
    while not dispatch.deadlines.is_workday(proposed):
        proposed += dt.timedelta(days=1)
    asked = client.post(
        f"/dept/tickets/{extended}/extension",
        data={
            "csrf_token": _token(client, extended),
            "extension_reason": "需协调施工单位",
            "extension_date": proposed,
        },
    )
    assert asked.status_code == 303
    page = client.get(asked.headers["Location"]).get_data(as_text=True)
    assert f"延期申请：至 {proposed.isoformat()}，待中心审核" in page
    again = client.post(
        f"/dept/tickets/{extended}/extension",
        data={"csrf_token": _token(client, extended), "extension_reason": "再延", "extension_date": proposed},
    )
    assert again.status_code == 409 and "已有待审核的延期申请" in again.get_data(as_text=True)


def test_an_assisting_department_signs_and_answers_its_share_before_the_lead_completes(
    db: sessionmaker[Session], login: Login, make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("housing", ["ecology"], content="工地夜间施工噪音", category_code="040101")
    lead, assist = login("dept-housing"), login("dept-ecology")
    assert "协办" in assist.get("/dept/").get_data(as_text=True)
    lead.post(f"/dept/tickets/{number}/sign", data={"csrf_token": _token(lead, number)})
    blocked = lead.post(
        f"/dept/tickets/{number}/reply", data={"csrf_token": _token(lead, number), "reply_text": "已处理"}
    )
    assert blocked.status_code == 409
    assert "协办单位尚未答复：市生态环境局，主办单位暂不能办结" in blocked.get_data(as_text=True)
    assert "已处理</textarea>" in blocked.get_data(as_text=True)
    assist.post(f"/dept/tickets/{number}/sign", data={"csrf_token": _token(assist, number)})
    assist.post(
        f"/dept/tickets/{number}/reply",
        data={"csrf_token": _token(assist, number), "reply_text": "噪声超标已取证"},
    )
    done = lead.post(
        f"/dept/tickets/{number}/reply", data={"csrf_token": _token(lead, number), "reply_text": "已处理"}
    )
    assert done.status_code == 303 and _ticket(db, number).status is TicketStatus.REPLIED
    page = lead.get(f"/dept/tickets/{number}").get_data(as_text=True)
    assert "协办答复" in page and "噪声超标已取证" in page


def test_pages_need_the_csrf_token(login: Login, make_ticket: Callable[..., str]) -> None:
    number = make_ticket("housing")
    assert login("dept-housing").post(f"/dept/tickets/{number}/sign").status_code == 400


def test_the_stylesheet_and_script_are_static_files(login: Login, make_ticket: Callable[..., str]) -> None:
    client = login("dept-housing")
    page = client.get(f"/dept/tickets/{make_ticket('housing')}").get_data(as_text=True)
    assert "<style" not in page and "style=" not in page and "<script>" not in page
    for name in ("dept.css", "dept.js"):
        with client.get(f"/dept/static/{name}") as response:
            assert response.status_code == 200


def test_an_action_on_a_stale_page_is_refused_instead_of_overwriting(
    db: sessionmaker[Session], login: Login, make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("housing")
    alice, bob = login("dept-housing"), login("dept-housing")
    stale_page = alice.get(f"/dept/tickets/{number}").get_data(as_text=True)
    version = stale_page.split('name="version" value="', 1)[1].split('"', 1)[0]
    token = _token(bob, number)
    signed = bob.post(f"/dept/tickets/{number}/sign", data={"csrf_token": token})  # Bob acts first
    assert signed.status_code == 303
    late = alice.post(
        f"/dept/tickets/{number}/return",
        data={"csrf_token": _token(alice, number), "version": version, "return_reason": "不属于本单位职责"},
    )
    assert late.status_code == 409 and "已被他人更新" in late.get_data(as_text=True)
    assert _events(db, number) == ["accept", "dispatch", "sign"]  # Alice's return did not happen


def test_a_write_from_a_stale_copy_fails_at_the_database(
    db: sessionmaker[Session], make_ticket: Callable[..., str]
) -> None:
    number = make_ticket("housing")
    first, second = db(), db()
    try:
        mine = first.scalars(select(Ticket).where(Ticket.number == number)).one()
        theirs = second.scalars(select(Ticket).where(Ticket.number == number)).one()
        theirs.title = "他人先改"
        second.commit()
        mine.title = "我后改"
        with pytest.raises(StaleDataError):
            first.commit()
    finally:
        first.close()
        second.close()
    with db() as session:
        assert session.scalars(select(Ticket.title).where(Ticket.number == number)).one() == "他人先改"
