"""A call's transcript in SQL: stored once per segment, read in order, found with its ticket."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from recordings import transcripts
from tickets.models import Channel
from tickets.search import search_tickets
from tickets.service import create_ticket


def test_segments_of_both_legs_read_in_order_and_the_ticket_is_found_by_what_was_said(
    db: sessionmaker[Session],
) -> None:
    said = [
        transcripts.Segment("call-7", "agent", 1, "您好 请讲", 0.5, 1.5),
        transcripts.Segment("call-7", "caller", 1, "小区 路灯 坏了", 2.0, 4.0),
        transcripts.Segment("call-7", "caller", 2, "晚上 很 黑", 5.0, 6.0),
    ]
    for segment in said:
        assert transcripts.save(db, segment)
    assert not transcripts.save(db, said[1])  # a retried write stores nothing twice
    with transaction(db) as session:
        ticket = create_ticket(session, channel=Channel.PHONE, content="路灯故障", call_id="call-7")
        session.flush()
        ticket_id = ticket.id
        create_ticket(session, channel=Channel.PHONE, content="噪音扰民", call_id="call-8")
    with db() as session:
        stored = transcripts.for_call(session, "call-7")
        assert [(s.leg, s.seq) for s in stored] == [("agent", 1), ("caller", 1), ("caller", 2)]
        assert transcripts.caller_text(stored) == "小区 路灯 坏了 晚上 很 黑"
        # Words only the citizen said (not in the ticket's own text) find the ticket.
        assert [t.id for t in search_tickets(session, "很 黑")] == [ticket_id]
        assert search_tickets(session, "噪音 黑") == []
