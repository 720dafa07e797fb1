"""The work-order lifecycle as a transition table (no I/O).

`受理 accepted → 派单 dispatched → 签收 signed → 办理 in progress → 办结 replied → 审核 reviewed
→ 回访 revisited → 归档 closed`, with the side paths of DESIGN.md: 直接办结, 退单 and 改派,
退回重办, 重办 after an unsatisfied revisit, 并单. Actions that do not move the status (催办,
督办, 延期 requests and decisions, notes) are allowed while a ticket is open. Anything else is
refused with an error naming the status and the action.

主办/协办: the ticket's status follows its lead department. Each assisting department signs,
replies or returns its own share (side actions that leave the status alone), and the lead's reply
(办结) is accepted only once every assisting department has replied or returned its share.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from tickets.models import AssignmentState
from tickets.models import TicketStatus as S


class Action(enum.StrEnum):
    RESOLVE_DIRECTLY = "resolve_directly"  # 直接办结 by the agent
    DISPATCH = "dispatch"  # 派单
    SIGN = "sign"  # 签收
    START = "start"  # 办理
    RETURN = "return"  # 退单 (the department says it is not theirs)
    REDISPATCH = "redispatch"  # 改派 (or back to the same department after 派单异议审核)
    REPLY = "reply"  # 办结 (the department's answer)
    APPROVE_REPLY = "approve_reply"  # 审核 passed
    REJECT_REPLY = "reject_reply"  # 退回重办
    REVISIT = "revisit"  # 回访 with the citizen's rating
    REOPEN = "reopen"  # 重办: the citizen says it is not fixed
    CLOSE = "close"  # 归档
    MERGE = "merge"  # 并单 into a lead ticket
    # No status change:
    URGE = "urge"  # 催办
    SUPERVISE = "supervise"  # 督办
    REQUEST_EXTENSION = "request_extension"  # 延期申请
    APPROVE_EXTENSION = "approve_extension"
    REFUSE_EXTENSION = "refuse_extension"
    # An assisting (协办) department's own steps; the ticket follows its lead department.
    ASSIST_SIGN = "assist_sign"
    ASSIST_REPLY = "assist_reply"
    ASSIST_RETURN = "assist_return"
    NOTE = "note"


TRANSITIONS: dict[tuple[S, Action], S] = {
    (S.ACCEPTED, Action.RESOLVE_DIRECTLY): S.RESOLVED_DIRECTLY,
    (S.ACCEPTED, Action.DISPATCH): S.DISPATCHED,
    (S.ACCEPTED, Action.MERGE): S.MERGED,
    (S.DISPATCHED, Action.SIGN): S.SIGNED,
    (S.DISPATCHED, Action.RETURN): S.RETURNED,
    (S.DISPATCHED, Action.MERGE): S.MERGED,
    (S.SIGNED, Action.START): S.IN_PROGRESS,
    (S.SIGNED, Action.RETURN): S.RETURNED,
    (S.SIGNED, Action.MERGE): S.MERGED,
    (S.IN_PROGRESS, Action.MERGE): S.MERGED,
    (S.RETURNED, Action.MERGE): S.MERGED,
    (S.SIGNED, Action.REPLY): S.REPLIED,
    (S.IN_PROGRESS, Action.REPLY): S.REPLIED,
    (S.RETURNED, Action.REDISPATCH): S.DISPATCHED,
    (S.RETURNED, Action.RESOLVE_DIRECTLY): S.RESOLVED_DIRECTLY,
    (S.REPLIED, Action.APPROVE_REPLY): S.REVIEWED,
    (S.REPLIED, Action.REJECT_REPLY): S.IN_PROGRESS,
    (S.REVIEWED, Action.REVISIT): S.REVISITED,
    (S.REVIEWED, Action.CLOSE): S.CLOSED,  # no revisit possible (anonymous, unreachable)
    (S.RESOLVED_DIRECTLY, Action.REVISIT): S.REVISITED,
    (S.RESOLVED_DIRECTLY, Action.CLOSE): S.CLOSED,
    (S.REVISITED, Action.CLOSE): S.CLOSED,
    (S.REVISITED, Action.REOPEN): S.DISPATCHED,
}

SIDE_ACTIONS = {
    Action.URGE,
    Action.SUPERVISE,
    Action.REQUEST_EXTENSION,
    Action.APPROVE_EXTENSION,
    Action.REFUSE_EXTENSION,
    Action.ASSIST_SIGN,
    Action.ASSIST_REPLY,
    Action.ASSIST_RETURN,
}
# With a department: the ones that can be urged, supervised or extended.
WITH_DEPARTMENT = {S.DISPATCHED, S.SIGNED, S.IN_PROGRESS}
FINAL = {S.CLOSED, S.MERGED}


class TransitionError(Exception):
    """An action that the lifecycle does not allow from the ticket's status."""

    def __init__(self, status: S, action: Action, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.action = action


def next_status(status: S, action: Action) -> S:
    """The status after `action`, or `TransitionError` if the table does not allow it."""
    if (status, action) in TRANSITIONS:
        return TRANSITIONS[(status, action)]
    if action is Action.NOTE and status not in FINAL:
        return status
    if action in SIDE_ACTIONS and status in WITH_DEPARTMENT:
        return status
    allowed = sorted(a.value for a in allowed_actions(status))
    raise TransitionError(
        status,
        action,
        f"action '{action.value}' is not allowed on a ticket in status '{status.value}'"
        f" (allowed: {', '.join(allowed) or 'none'})",
    )


def allowed_actions(status: S) -> set[Action]:
    actions = {a for (s, a) in TRANSITIONS if s == status}
    if status not in FINAL:
        actions.add(Action.NOTE)
    if status in WITH_DEPARTMENT:
        actions |= SIDE_ACTIONS
    return actions


def assists_blocking_reply(assists: Iterable[tuple[str, AssignmentState]]) -> list[str]:
    """The assisting departments (by name) whose share is still open, so the lead cannot reply yet."""
    done = {AssignmentState.REPLIED, AssignmentState.RETURNED}
    return [name for name, state in assists if state not in done]
