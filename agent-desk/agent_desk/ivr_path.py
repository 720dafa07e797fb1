"""The caller's way through the IVR, as the screen pop shows it: the CDR's `ivr_path` in Chinese.

The softswitch notes what happened as small dicts (`ivr.menu_run`, `ivr.flow.note`): entering a
node `{"node", "via"}`, a key or word `{"node", "input", "via", "action"|"result"}`, silence
`{"via": "timeout"}`, the queue `{"queue"}`, a seat `{"seat", "result"}`, voicemail, ticket
look-up, transfer, callback, and the call controls carried out (`ivr.call_control`:
`{"control", "target", "by"}`: an agent's transfer shows to the next agent) with what came of
them (`{"transfer": "queue"|"seat"|"attended", ...}`, `{"consult": ...}`). Entries the desk has no
words for are left out. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent_desk.call_controls import ACTION_LABELS
from agent_desk.call_report import QUEUE_LABELS

NODE_LABELS = {"entry": "主菜单"}
MENU_ACTIONS = {
    "submenu": "下级菜单",
    "queue": "转人工",
    "voicemail": "留言",
    "ticket_status": "查询工单",
    "play": "收听信息",
    "transfer": "转接",
    "hangup": "挂机",
    "hours": "按时段",
}
VOICEMAIL = {"recording": "留言", "saved": "留言已保存", "empty": "留言为空", "unavailable": "留言不可用"}
QUEUE_RESULTS = {"nobody_logged_in": "无座席签入", "queue_full": "排队已满"}


def _node(entry: dict[str, Any]) -> str:
    node = str(entry.get("node", ""))
    return NODE_LABELS.get(node, f"菜单 {node}")


def _key(entry: dict[str, Any]) -> str:
    """A key pressed or a word said in a menu."""
    said = entry.get("via") == "speech"
    heard = f"语音“{entry.get('word') or entry['input']}”" if said else f"按键 {entry['input']}"
    if entry.get("result") == "invalid":
        return f"{heard}（无效）"
    if entry.get("result") == "not_understood":
        return "语音未识别"
    action = MENU_ACTIONS.get(str(entry.get("action", "")))
    return f"{heard}（{action}）" if action else heard


def _queue(entry: dict[str, Any]) -> str:
    name = str(entry["queue"])
    label = QUEUE_LABELS.get(name, name)
    if "left" in entry:
        return f"离开队列：{label}"
    if entry.get("result") in QUEUE_RESULTS:
        return f"{label}{QUEUE_RESULTS[entry['result']]}"
    return f"排队：{label}"


def _control(entry: dict[str, Any]) -> str | None:
    label = ACTION_LABELS.get(entry["control"])
    target = str(entry.get("target") or "")
    target = QUEUE_LABELS.get(target, target) if entry["control"] == "transfer_queue" else target
    return f"{label} {target}" if label and target else label


def _handed_on(entry: dict[str, Any]) -> str | None:
    """Where an agent's transfer took the caller (these notes also name a queue or a seat)."""
    kind, queue = entry["transfer"], str(entry.get("queue") or "")
    if kind == "attended":
        return f"咨询转接至座席 {entry.get('seat', '')}"
    if kind == "seat":
        return f"转座席 {entry.get('seat', '')}"
    if kind == "queue" and entry.get("why") == "consult_unanswered":
        return "同事未接听，市民转入排队"
    if kind == "queue":
        return f"转队列 {QUEUE_LABELS.get(queue, queue)}".strip()
    return None


def _step(entry: dict[str, Any]) -> str | None:
    via = entry.get("via")
    if "input" in entry:
        return _key(entry)
    if "control" in entry:
        return _control(entry)
    if entry.get("transfer") in {"attended", "seat", "queue"}:
        return _handed_on(entry)
    if "consult" in entry:
        return "咨询结束，恢复通话" if entry["consult"] == "ended" else None
    if via in {"start", "submenu", "hours"}:
        return _node(entry)
    if via == "timeout":
        return "未按键，重播" if entry.get("result") == "replay" else "未按键，转默认"
    if via == "retries":
        return "多次输入无效，转默认"
    if "queue" in entry:
        return _queue(entry)
    if "seat" in entry:
        return f"座席 {entry['seat']} " + ("接听" if entry.get("result") == "answered" else "未应答")
    if "callback" in entry:
        return "回拨未预约" if entry["callback"] == "refused" else "预约回拨"
    if "voicemail" in entry:
        return VOICEMAIL.get(str(entry["voicemail"]))
    if entry.get("action") == "ticket_status":
        return "查询工单"
    if "transfer" in entry:
        return f"转接 {entry['transfer']}" + ("（失败）" if entry.get("result") == "failed" else "")
    if entry.get("event") == "worker_lost":
        return "软交换故障后恢复"
    return None


def steps(path: Iterable[Any]) -> list[str]:
    """The readable steps of an IVR path, in order; repeated notes of one step shown once."""
    shown: list[str] = []
    for entry in path:
        step = _step(entry) if isinstance(entry, dict) else None
        if step and (not shown or shown[-1] != step):
            shown.append(step)
    return shown
