"""The notifications outbox: rows written with their change, delivered by signed webhook and SMTP,
retried while the receiver is down, failed and retried by hand, and waiting when not set up."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction, utcnow
from tickets import delivery, dispatch
from tickets.delivery import DeliveryConfig
from tickets.models import Channel, Department, Ticket
from tickets.models_outcomes import Notification, NotificationAttempt, NotificationState
from tickets.service import create_ticket

SECRET = "s3cret-for-the-sms-gateway"


@dataclass
class Receiver:
    """A department system / SMS gateway: checks the signature, takes each key once."""

    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    refused: int = 0
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            signed = delivery.verify_signature(
                SECRET, self.headers[delivery.TIMESTAMP_HEADER], body, self.headers[delivery.SIGNATURE_HEADER]
            )
            status = state.status if signed else 401
            if status == 200:
                key = self.headers["Idempotency-Key"]
                if key not in state.keys:  # a repeat of a delivery already taken is acknowledged only
                    state.keys.add(key)
                    state.received.append(json.loads(body))
            else:
                state.refused += 1
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks/12345"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def _config(receiver: Receiver | None = None, smtp_port: int = 0, **extra: Any) -> DeliveryConfig:
    values: dict[str, Any] = {"timeout_s": 3.0}
    if receiver is not None:
        values |= {"webhook_url": receiver.url, "webhook_secret": SECRET}
    if smtp_port:
        values |= {"smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_from": "12345@lps.gov.cn"}
    return DeliveryConfig(**(values | extra))


def _accepted_ticket(db: sessionmaker[Session], at: dt.datetime | None = None, **fields: Any) -> str:
    fields.setdefault("caller_phone", "13800001234")
    with transaction(db) as session:
        return create_ticket(session, channel=Channel.PHONE, content="路灯不亮", now=at, **fields).number


def _rows(db: sessionmaker[Session]) -> list[Notification]:
    with db() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def test_rows_are_written_with_their_change_and_never_without_it(
    db: sessionmaker[Session], departments: dict[str, int]
) -> None:
    with pytest.raises(RuntimeError), transaction(db) as session:
        create_ticket(session, channel=Channel.PHONE, content="x", caller_phone="13800001234")
        raise RuntimeError("the change fails")
    assert _rows(db) == []
    with transaction(db) as session:
        session.get_one(Department, departments["housing"]).notify_email = "banli@housing.example.cn"
        ticket = create_ticket(
            session,
            channel=Channel.PHONE,
            content="施工噪声扰民",
            title="夜间施工噪声",
            caller_phone="13800001234",
            caller_name="李四",
            confidential=True,
        )
        dispatch.dispatch(session, ticket, departments["housing"], [departments["ecology"]])
    rows = _rows(db)
    assert [(r.kind, r.audience.value, r.medium.value, r.recipient) for r in rows] == [
        ("ticket.accepted", "citizen", "webhook", "13800001234"),
        ("ticket.dispatched", "department", "webhook", "housing"),
        ("ticket.dispatched", "department", "email", "banli@housing.example.cn"),
        ("ticket.dispatched", "department", "webhook", "ecology"),
    ]
    for row in rows[1:]:
        text = json.dumps(row.payload, ensure_ascii=False) + row.body
        assert "李四" not in text and "13800001234" not in text  # a department never hears of the reporter
    assert "请于" in rows[1].body and "主办" in rows[1].body and "协办" in rows[3].body
    assert len({r.idempotency_key for r in rows}) == 4


def test_a_webhook_down_for_an_hour_gets_the_message_once_it_is_back(
    db: sessionmaker[Session], receiver: Receiver
) -> None:
    start = utcnow()
    number = _accepted_ticket(db, at=start)
    config = _config(receiver)
    receiver.status = 503
    now, tries = start, 0
    while now < start + dt.timedelta(hours=1):
        report = delivery.deliver_due(db, config, now=now)
        tries += report.retrying
        now += dt.timedelta(seconds=30)
    assert receiver.received == [] and tries == 7  # at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 minutes
    row = _rows(db)[0]
    assert row.state is NotificationState.PENDING and row.last_error.startswith("HTTP 503")
    assert row.next_attempt_at - now <= dt.timedelta(minutes=30)
    receiver.status = 200
    report = delivery.deliver_due(db, config, now=row.next_attempt_at)
    assert report.delivered == 1
    assert len(receiver.received) == 1
    message = receiver.received[0]
    assert message["type"] == "ticket.accepted" and message["recipient"]["phone"] == "13800001234"
    assert number in message["text"] and message["ticket"]["number"] == number
    with db() as session:
        attempts = session.scalars(select(NotificationAttempt).order_by(NotificationAttempt.id)).all()
        assert len(attempts) == tries + 1 and [a.ok for a in attempts][-2:] == [False, True]
        assert attempts[0].status_code == 503 and attempts[-1].status_code == 200
    assert _rows(db)[0].state is NotificationState.DELIVERED
    # Nothing is sent twice.
    assert delivery.deliver_due(db, config, now=now + dt.timedelta(hours=2)).delivered == 0


def test_a_refused_webhook_fails_visibly_and_can_be_retried(
    db: sessionmaker[Session], receiver: Receiver
) -> None:
    _accepted_ticket(db)
    wrong = _config(receiver, webhook_secret="not-the-gateway-secret")
    report = delivery.deliver_due(db, wrong)
    assert report.failed == 1 and receiver.refused == 1
    row = _rows(db)[0]
    assert row.state is NotificationState.FAILED and row.last_error.startswith("HTTP 401")
    with transaction(db) as session:
        delivery.retry(session, row.id)
    assert delivery.deliver_due(db, _config(receiver)).delivered == 1
    assert len(receiver.received) == 1 and _rows(db)[0].attempts == 2


def test_a_second_sender_does_not_send_a_claimed_row(db: sessionmaker[Session], receiver: Receiver) -> None:
    _accepted_ticket(db)
    row = _rows(db)[0]
    claimed = delivery._claim(db, row.id, utcnow())
    assert claimed is not None and delivery._claim(db, row.id, utcnow()) is None
    # Until the lease runs out: a sender that died lets go of it.
    later = utcnow() + delivery.LEASE + dt.timedelta(seconds=1)
    assert delivery.deliver_due(db, _config(receiver), now=later).delivered == 1


def test_e_mail_goes_out_over_smtp_with_a_stable_message_id(
    db: sessionmaker[Session], departments: dict[str, int], mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    with transaction(db) as session:
        session.get_one(Department, departments["water-supply"]).notify_email = "duty@water.example.cn"
        ticket = create_ticket(session, channel=Channel.PHONE, content="停水", title="整栋楼停水")
        dispatch.dispatch(session, ticket, departments["water-supply"])
        number = ticket.number
    report = delivery.deliver_due(db, _config(smtp_port=port))
    assert report.delivered == 1 and "webhook" in report.not_configured and "未配置 webhook" in report.status
    (message,) = box.messages
    key = next(r.idempotency_key for r in _rows(db) if r.medium.value == "email")
    assert message["To"] == "duty@water.example.cn" and message["Message-ID"] == f"<{key}@hotline12345>"
    assert number in message["Subject"] and "整栋楼停水" in message.get_content()


def test_without_settings_rows_wait_then_fail_saying_why(
    db: sessionmaker[Session], mailbox: tuple[Mailbox, int]
) -> None:
    created = utcnow() - dt.timedelta(hours=1)
    _accepted_ticket(db, at=created)
    report = delivery.deliver_due(db, DeliveryConfig())
    assert (report.delivered, report.failed) == (0, 0) and report.status.startswith("not_configured")
    assert _rows(db)[0].state is NotificationState.PENDING
    report = delivery.deliver_due(db, DeliveryConfig(), now=created + dt.timedelta(hours=49))
    row = _rows(db)[0]
    assert row.state is NotificationState.FAILED and "未配置 webhook" in row.last_error
    # An SMTP server that is down is retried, not given up.
    _accepted_ticket(db, caller_phone="", caller_name="x")
    box, port = mailbox
    with transaction(db) as session:
        ticket = session.scalars(select(Ticket).order_by(Ticket.id.desc())).first()
        assert ticket is not None
        from tickets import notify

        notify.to_centre(session, ticket, notify.Kind.SUPERVISED, "督办测试", utcnow())
    down = _config(smtp_port=_free_port(), centre_email="centre@lps.gov.cn")
    assert delivery.deliver_due(db, down).retrying == 1
    up = _config(smtp_port=port, centre_email="centre@lps.gov.cn")
    assert delivery.deliver_due(db, up, now=utcnow() + dt.timedelta(minutes=1)).delivered == 1
    assert box.messages[0]["To"] == "centre@lps.gov.cn"


def test_the_job_reads_the_settings_and_says_when_nothing_is_set_up(
    db: sessionmaker[Session], job_environment: Any
) -> None:
    from rq import Queue, SimpleWorker

    from hotline import bus

    _accepted_ticket(db)
    connection = bus.connect(job_environment.effective_redis_url, decode_responses=False)
    queue = Queue("default", connection=connection)
    job = queue.enqueue("tickets.jobs.deliver_notifications")
    SimpleWorker([queue], connection=connection).work(burst=True)
    result = job.return_value()
    assert result["status"].startswith("not_configured") and result["delivered"] == 0
    connection.close()


def test_supervisors_see_failures_with_every_attempt_and_send_again(
    db: sessionmaker[Session], receiver: Receiver, login: Callable[[str], Any]
) -> None:
    from hotline.accounts import Role, User
    from tests.helpers import csrf_of
    from tests.tickets.conftest import _password_hash

    with transaction(db) as session:
        session.add(
            User(
                username="banzhang",
                display_name="班长",
                role=Role.SUPERVISOR,
                password_hash=_password_hash(),
                must_change_password=False,
            )
        )
    _accepted_ticket(db)
    receiver.status = 400
    assert delivery.deliver_due(db, _config(receiver)).failed == 1
    assert login("agent1").get("/outbox/").status_code == 403
    assert login("dept-housing").get("/outbox/").status_code == 403
    client = login("banzhang")
    listing = client.get("/outbox/").get_data(as_text=True)
    assert "发送失败" in listing and "HTTP 400" in listing and "138****1234" in listing
    row = _rows(db)[0]
    page = client.get(f"/outbox/{row.id}").get_data(as_text=True)
    assert "发送尝试（1 次）" in page and "重新发送" in page and "13800001234" not in page
    again = client.post(f"/outbox/{row.id}/retry", data={"csrf_token": csrf_of(client, f"/outbox/{row.id}")})
    assert again.status_code == 303 and "已重新加入发送队列" in client.get(
        again.headers["Location"]
    ).get_data(as_text=True)
    receiver.status = 200
    assert delivery.deliver_due(db, _config(receiver)).delivered == 1


def test_the_settings_become_the_delivery_config_secrets_included() -> None:
    from types import SimpleNamespace

    from pydantic import SecretStr

    settings = SimpleNamespace(
        notify_webhook_url="https://sms.example.cn/hook",
        notify_webhook_secret=SecretStr("k"),
        notify_smtp_host="mail.example.cn",
        notify_smtp_port=587,
        notify_smtp_security="starttls",
        notify_smtp_password=None,
        notify_smtp_from="12345@example.cn",
    )
    config = DeliveryConfig.from_settings(settings)
    assert (config.webhook_url, config.webhook_secret, config.smtp_port) == (
        "https://sms.example.cn/hook",
        "k",
        587,
    )
    assert config.smtp_password == "" and config.centre_email == ""  # unset and absent keys
    assert not config.missing(delivery.Medium.WEBHOOK) and not config.missing(delivery.Medium.EMAIL)
    assert "notify_webhook_url" in DeliveryConfig().missing(delivery.Medium.WEBHOOK)


def test_a_redispatch_tells_the_new_lead_first_then_the_assists_in_the_order_they_joined(
    db: sessionmaker[Session], departments: dict[str, int]
) -> None:
    with transaction(db) as session:
        ticket = create_ticket(session, channel=Channel.PHONE, content="施工噪声", caller_phone="13800001234")
        dispatch.dispatch(session, ticket, departments["housing"], [departments["ecology"]])
        dispatch.return_(session, ticket, departments["housing"], "不属于本单位职责")
        # 改派: a new lead, a new assist named first, and the assist the ticket already had.
        assists = [departments["urban-management"], departments["ecology"]]
        dispatch.dispatch(session, ticket, departments["water-supply"], assists)
    sent = [(r.recipient, r.body) for r in _rows(db) if r.kind == "ticket.dispatched"]
    assert [recipient for recipient, _ in sent] == [
        "housing",
        "ecology",
        "water-supply",
        "ecology",  # its share existed before the new assist's
        "urban-management",
    ]
    assert "主办" in sent[2][1] and "协办" in sent[3][1] and "协办" in sent[4][1]
