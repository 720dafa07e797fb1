"""Chinese names of statuses, actions and kinds, for pages and API answers (no I/O)."""

from __future__ import annotations

from tickets.deadlines import DeadlineState
from tickets.lifecycle import Action, TransitionError
from tickets.models import (
    AssignmentRole,
    AssignmentState,
    Channel,
    RequestKind,
    TicketEvent,
    TicketStatus,
    Urgency,
)

STATUS = {
    TicketStatus.ACCEPTED: "已受理",
    TicketStatus.RESOLVED_DIRECTLY: "直接办结",
    TicketStatus.DISPATCHED: "待签收",
    TicketStatus.SIGNED: "已签收",
    TicketStatus.IN_PROGRESS: "办理中",
    TicketStatus.RETURNED: "已退单",
    TicketStatus.REPLIED: "已办结待审核",
    TicketStatus.REVIEWED: "已审核",
    TicketStatus.REVISITED: "已回访",
    TicketStatus.CLOSED: "已归档",
    TicketStatus.MERGED: "已并单",
}

ACTION = {
    "accept": "受理",
    Action.RESOLVE_DIRECTLY: "直接办结",
    Action.DISPATCH: "派单",
    Action.SIGN: "签收",
    Action.START: "开始办理",
    Action.RETURN: "退单",
    Action.REDISPATCH: "改派",
    Action.REPLY: "办结",
    Action.APPROVE_REPLY: "审核通过",
    Action.REJECT_REPLY: "退回重办",
    Action.REVISIT: "回访",
    Action.REOPEN: "重办",
    Action.CLOSE: "归档",
    Action.MERGE: "并单",
    Action.URGE: "催办",
    Action.SUPERVISE: "督办",
    Action.REQUEST_EXTENSION: "申请延期",
    Action.APPROVE_EXTENSION: "同意延期",
    Action.REFUSE_EXTENSION: "不同意延期",
    Action.ASSIST_SIGN: "协办签收",
    Action.ASSIST_REPLY: "协办答复",
    Action.ASSIST_RETURN: "协办退回",
    Action.NOTE: "备注",
}

KIND = {
    RequestKind.CONSULT: "咨询",
    RequestKind.HELP: "求助",
    RequestKind.COMPLAINT: "投诉",
    RequestKind.REPORT: "举报",
    RequestKind.SUGGESTION: "建议",
    RequestKind.PRAISE: "表扬",
}

CHANNEL = {
    Channel.PHONE: "电话",
    Channel.VOICEMAIL: "留言",
    Channel.PORTAL: "网站",
    Channel.OPEN311: "Open311 接口",
    Channel.DEPARTMENT_API: "部门接口",
}

URGENCY = {Urgency.NORMAL: "一般", Urgency.URGENT: "紧急", Urgency.EMERGENCY: "特急"}

ROLE = {AssignmentRole.LEAD: "主办", AssignmentRole.ASSIST: "协办"}

ASSIGNMENT = {
    AssignmentState.DISPATCHED: "待签收",
    AssignmentState.SIGNED: "已签收",
    AssignmentState.REPLIED: "已答复",
    AssignmentState.RETURNED: "已退回",
}

DEADLINE = {
    DeadlineState.NONE: "",
    DeadlineState.ON_TIME: "",
    DeadlineState.DUE_SOON: "临期",
    DeadlineState.OVERDUE: "已超期",
}


def action(name: str) -> str:
    return ACTION.get(name, name)


def refused(error: TransitionError) -> str:
    """A transition error as the user reads it."""
    return f"工单当前状态为“{STATUS[error.status]}”，不能{action(error.action)}"


def note(event: TicketEvent) -> str:
    """The event's note for display; the creation note names the channel in English, so translate it."""
    channel = event.note.removeprefix("channel ")
    if event.action == "accept" and channel in set(Channel):
        return f"来源：{CHANNEL[Channel(channel)]}"
    return event.note
