"""The screen pop's IVR path reads in words: what the caller pressed, said and went through."""

from __future__ import annotations

from agent_desk.ivr_path import steps


def test_a_caller_who_mistyped_then_left_a_message() -> None:
    path = [
        {"node": "entry", "via": "start"},
        {"node": "entry", "input": "7", "via": "dtmf", "result": "invalid"},
        {"node": "entry", "input": "9", "via": "dtmf", "action": "voicemail"},
        {"node": "entry", "voicemail": "recording"},
        {"node": "entry", "voicemail": "saved", "ticket": "20261127-0001"},
    ]
    assert steps(path) == ["主菜单", "按键 7（无效）", "按键 9（留言）", "留言", "留言已保存"]


def test_a_caller_a_seat_missed_then_another_answered_after_a_lost_worker() -> None:
    path = [
        {"node": "entry", "via": "start"},
        {"node": "entry", "via": "timeout", "result": "fallback"},
        {"node": "entry", "queue": "dialect"},
        {"node": "entry", "seat": "8001", "result": "rona", "sip_status": 408},
        {"node": "entry", "seat": "8002", "result": "answered"},
        {"event": "worker_lost", "recovered_at": "2026-11-27T08:00:00+00:00"},
        {"something": "new"},  # a note the desk has no words for yet is left out, not shown raw
    ]
    assert steps(path) == [
        "主菜单",
        "未按键，转默认",
        "排队：方言专席",
        "座席 8001 未应答",
        "座席 8002 接听",
        "软交换故障后恢复",
    ]


def test_transfers_lookups_callbacks_and_an_agents_controls() -> None:
    path = [
        {"node": "entry", "input": "1", "via": "speech", "word": "查询", "action": "ticket_status"},
        {"node": "entry", "action": "ticket_status", "found": True},
        {"node": "entry", "queue": "general", "result": "queue_full", "fallback": "callback"},
        {"node": "entry", "callback": "17"},
        {"node": "entry", "transfer": "12315", "result": "failed", "why": "busy"},
        {"node": "entry", "control": "hold", "target": "", "by": 1},
        {"node": "entry", "control": "transfer_queue", "target": "enterprise", "by": 1},
    ]
    assert steps(path) == [
        "语音“查询”（查询工单）",
        "查询工单",
        "综合排队已满",
        "预约回拨",
        "转接 12315（失败）",
        "保持",
        "转队列 涉企专席",
    ]


def test_an_attended_transfer_reads_as_one_to_the_colleague_who_took_the_call() -> None:
    path = [
        {"node": "entry", "queue": "general"},
        {"node": "entry", "seat": "8001", "result": "answered"},
        {"node": "entry", "control": "consult", "target": "8003", "by": 1},
        {"node": "entry", "seat": "8003", "result": "rona", "sip_status": 408},
        {"node": "entry", "consult": "ended"},
        {"node": "entry", "control": "consult", "target": "8002", "by": 1},
        {"node": "entry", "consult": "8002"},
        {"node": "entry", "control": "complete_transfer", "target": "", "by": 1},
        {"node": "entry", "transfer": "attended", "seat": "8002"},
        {"node": "entry", "control": "transfer_seat", "target": "8004", "by": 2},
        {"node": "entry", "transfer": "seat", "seat": "8004"},
    ]
    assert steps(path) == [
        "排队：综合",
        "座席 8001 接听",
        "咨询转接 8003",
        "座席 8003 未应答",
        "咨询结束，恢复通话",
        "咨询转接 8002",
        "完成转接",
        "咨询转接至座席 8002",  # not "座席 8002 未应答": the note names the seat it went to
        "转座席 8004",  # the control and where it took the caller: said once
    ]
