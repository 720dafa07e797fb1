"""IVR menus as data: loading a TOML menu, checking it, and the shape of its nodes and actions.

A menu is a set of nodes; each node plays prompts, then waits for DTMF (or a spoken keyword
mapped to a key) and takes the action bound to it. The checks enforce what GB/T 33358 asks:
every node leads somewhere a person or a clear goodbye can be reached, nobody is trapped in a
loop, and silence ("stay on the line") reaches the queue by default. This module does no call
I/O; `ivr.menu_run` walks a menu for one call.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.hours import BusinessHours


class ActionKind(enum.StrEnum):
    SUBMENU = "submenu"  # go to another node
    QUEUE = "queue"  # wait for an agent (queue = skill)
    VOICEMAIL = "voicemail"  # 留言
    TICKET_STATUS = "ticket_status"  # key a ticket number, hear its status
    PLAY = "play"  # play a prompt, then return to this node
    TRANSFER = "transfer"  # to an external number (department hotline, 110/119/120/122)
    HANGUP = "hangup"  # only after a clear goodbye prompt
    HOURS = "hours"  # day node when open, night node otherwise


# Actions that leave the menu; a node from which none is reachable traps the caller.
EXITS = {ActionKind.QUEUE, ActionKind.VOICEMAIL, ActionKind.TRANSFER, ActionKind.HANGUP}
DEFAULT_QUEUE = "general"
DEFAULT_MENU = Path(__file__).with_name("menus") / "default.toml"


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    node: str = ""  # submenu
    queue: str = ""  # queue
    prompt: str = ""  # play, hangup (the goodbye)
    number: str = ""  # transfer
    day: str = ""  # hours
    night: str = ""  # hours
    line: int = 0

    def targets(self) -> list[str]:
        return [n for n in (self.node, self.day, self.night) if n]


@dataclass(frozen=True)
class Node:
    id: str
    prompts: tuple[str, ...]
    options: Mapping[str, Action]
    keywords: Mapping[str, str] = field(default_factory=dict)  # spoken word -> key
    timeout_s: float = 6.0  # waiting for the first key after the prompts
    interdigit_s: float = 3.0
    max_digits: int = 1
    retries: int = 2  # wrong keys tolerated before the fallback
    no_input_retries: int = 0  # silence replays the prompts this often; 0 = "stay on the line" acts at once
    invalid_prompt: str = "invalid_input"
    # After silence or too many wrong keys: by default a person (never a hang-up on a listener).
    fallback: Action = field(default_factory=lambda: Action(ActionKind.QUEUE, queue=DEFAULT_QUEUE))
    line: int = 0


@dataclass(frozen=True)
class Menu:
    start: str
    nodes: Mapping[str, Node]
    hours: BusinessHours | None = None
    path: str = ""

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]


@dataclass(frozen=True)
class Problem:
    line: int
    message: str
    path: str = ""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class MenuError(Exception):
    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# Loading -------------------------------------------------------------------------------------
_HEADER = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("([^"]*)"|'([^']*)'|[A-Za-z0-9_\-]+)\s*=""")


def _locate(text: str) -> dict[str, int]:
    """Line numbers of TOML tables and keys: {"nodes.main": 12, "nodes.main.options.0": 15}."""
    lines: dict[str, int] = {}
    table = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        if header:
            table = ".".join(part.strip().strip("\"'") for part in header.group(1).split("."))
            lines.setdefault(table, number)
            continue
        key = _KEY.match(raw)
        if key:
            name = key.group(2) if key.group(2) is not None else (key.group(3) or key.group(1))
            lines.setdefault(f"{table}.{name}" if table else name, number)
    return lines


def _time(value: Any, where: str) -> dt.time:
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError(f"{where}: '{value}' 不是形如 08:30 的时间") from exc


class _Loader:
    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.lines = _locate(text)
        self.problems: list[Problem] = []

    def line(self, *keys: str) -> int:
        for key in keys:
            if key in self.lines:
                return self.lines[key]
        return 0

    def problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.line(key, key.rsplit(".", 1)[0]), message, self.path))

    def action(self, raw: Any, key: str) -> Action | None:
        if isinstance(raw, str):  # shorthand: "queue:general", "submenu:status", "voicemail"
            kind, _, arg = raw.partition(":")
            raw = {"action": kind, **({_ARG_FOR.get(kind, "node"): arg} if arg else {})}
        if not isinstance(raw, Mapping):
            self.problem(key, '动作应写成表，例如 { action = "queue", queue = "general" }')
            return None
        try:
            kind = ActionKind(raw.get("action", ""))
        except ValueError:
            choices = ", ".join(k.value for k in ActionKind)
            self.problem(key, f"未知的动作 '{raw.get('action', '')}'（可选：{choices}）")
            return None
        unknown = set(raw) - {"action", "node", "queue", "prompt", "number", "day", "night"}
        if unknown:
            self.problem(key, f"未知的字段：{', '.join(sorted(unknown))}")
        action = Action(
            kind=kind,
            node=str(raw.get("node", "")),
            queue=str(raw.get("queue", DEFAULT_QUEUE if kind is ActionKind.QUEUE else "")),
            prompt=str(raw.get("prompt", "goodbye" if kind is ActionKind.HANGUP else "")),
            number=str(raw.get("number", "")),
            day=str(raw.get("day", "")),
            night=str(raw.get("night", "")),
            line=self.line(key),
        )
        required = {
            ActionKind.SUBMENU: ("node",),
            ActionKind.PLAY: ("prompt",),
            ActionKind.TRANSFER: ("number",),
            ActionKind.HOURS: ("day", "night"),
        }.get(kind, ())
        for name in required:
            if not getattr(action, name):
                self.problem(key, f"动作 '{kind}' 需要填写 '{name}'")
        return action

    def node(self, node_id: str, raw: Any) -> Node | None:
        key = f"nodes.{node_id}"
        if not isinstance(raw, Mapping):
            self.problem(key, "节点应写成表")
            return None
        allowed = {
            "prompts",
            "options",
            "keywords",
            "timeout_s",
            "interdigit_s",
            "max_digits",
            "retries",
            "no_input_retries",
            "invalid_prompt",
            "fallback",
        }
        for name in sorted(set(raw) - allowed):
            self.problem(f"{key}.{name}", f"未知的节点字段 '{name}'")
        prompts = raw.get("prompts", [])
        if isinstance(prompts, str):
            prompts = [prompts]
        options: dict[str, Action] = {}
        for digits, option in dict(raw.get("options", {})).items():
            if not re.fullmatch(r"[0-9*#]{1,16}", str(digits)):
                self.problem(f"{key}.options.{digits}", f"选项按键 '{digits}' 不是电话按键（0-9、*、#）")
                continue
            parsed = self.action(option, f"{key}.options.{digits}")
            if parsed:
                options[str(digits)] = parsed
        keywords = {str(word): str(k) for word, k in dict(raw.get("keywords", {})).items()}
        for word, digits in keywords.items():
            if digits not in options:
                self.problem(
                    f"{key}.keywords.{word}", f"关键词 '{word}' 对应按键 '{digits}'，但该按键不是本节点的选项"
                )
        fallback = self.action(raw["fallback"], f"{key}.fallback") if "fallback" in raw else None
        try:
            return Node(
                id=node_id,
                prompts=tuple(str(p) for p in prompts),
                options=options,
                keywords=keywords,
                timeout_s=float(raw.get("timeout_s", 6.0)),
                interdigit_s=float(raw.get("interdigit_s", 3.0)),
                max_digits=int(raw.get("max_digits", max((len(d) for d in options), default=1))),
                retries=int(raw.get("retries", 2)),
                no_input_retries=int(raw.get("no_input_retries", 0)),
                invalid_prompt=str(raw.get("invalid_prompt", "invalid_input")),
                line=self.line(key),
                **({"fallback": fallback} if fallback else {}),
            )
        except (TypeError, ValueError) as exc:
            self.problem(key, f"取值有误：{exc}")
            return None


_ARG_FOR = {"queue": "queue", "submenu": "node", "play": "prompt", "transfer": "number", "hangup": "prompt"}


def parse_menu(text: str, path: str = "<menu>") -> Menu:
    """Parse a menu; raise `MenuError` with every problem found, each with its line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = int(m.group(1)) if (m := re.search(r"line (\d+)", str(exc))) else 0
        raise MenuError([Problem(line, f"不是有效的 TOML：{exc}", path)]) from exc
    loader = _Loader(text, path)
    for name in sorted(set(data) - {"start", "hours", "nodes"}):
        loader.problem(name, f"未知的顶层键 '{name}'")
    nodes = {}
    for node_id, raw in dict(data.get("nodes", {})).items():
        node = loader.node(str(node_id), raw)
        if node:
            nodes[node.id] = node
    hours = None
    if "hours" in data:
        raw_hours = data["hours"]
        try:
            hours = BusinessHours(
                opens=_time(raw_hours.get("opens", "00:00"), "hours.opens"),
                closes=_time(raw_hours.get("closes", "23:59:59"), "hours.closes"),
                workdays_only=bool(raw_hours.get("workdays_only", True)),
                timezone=str(raw_hours.get("timezone", "Asia/Shanghai")),
            )
        except (ValueError, AttributeError) as exc:
            loader.problem("hours", str(exc))
    start = str(data.get("start", ""))
    if not start:
        loader.problem("start", "菜单需要 'start'（第一个节点）")
    elif start not in nodes:
        loader.problem("start", f"起始节点 '{start}' 未定义")
    if loader.problems:
        raise MenuError(loader.problems)
    return Menu(start=start, nodes=nodes, hours=hours, path=path)


def load_menu(path: Path) -> Menu:
    return parse_menu(path.read_text(encoding="utf-8"), str(path))


# Checking ------------------------------------------------------------------------------------
def _actions(node: Node) -> list[Action]:
    return [*node.options.values(), node.fallback]


def check_menu(menu: Menu, prompt_ids: Iterable[str]) -> list[Problem]:
    """Unknown prompts and nodes, unreachable nodes, and nodes with no way out."""
    known_prompts = set(prompt_ids)
    problems: list[Problem] = []

    def add(line: int, message: str) -> None:
        problems.append(Problem(line, message, menu.path))

    for node in menu.nodes.values():
        for prompt in (*node.prompts, node.invalid_prompt):
            if prompt not in known_prompts:
                add(node.line, f"节点 '{node.id}'：未知的提示音 '{prompt}'")
        for action in _actions(node):
            for target in action.targets():
                if target not in menu.nodes:
                    add(action.line or node.line, f"节点 '{node.id}'：转到未定义的节点 '{target}'")
            if action.prompt and action.prompt not in known_prompts:
                add(action.line or node.line, f"节点 '{node.id}'：未知的提示音 '{action.prompt}'")
            if action.kind is ActionKind.TRANSFER and not re.fullmatch(r"\+?[0-9]{3,20}", action.number):
                add(
                    action.line or node.line,
                    f"节点 '{node.id}'：转接号码 '{action.number}' 不是电话号码",
                )
        if (
            min(node.retries, node.no_input_retries) < 0
            or node.timeout_s <= 0
            or node.interdigit_s <= 0
            or node.max_digits < 1
        ):
            add(node.line, f"节点 '{node.id}'：超时和 max_digits 必须为正数，重试次数不能为负数")

    def successors(node_id: str) -> set[str]:
        node = menu.nodes.get(node_id)
        return {t for a in _actions(node) for t in a.targets() if t in menu.nodes} if node else set()

    reachable: set[str] = set()
    todo = [menu.start]
    while todo:
        current = todo.pop()
        if current not in reachable:
            reachable.add(current)
            todo.extend(successors(current))
    for node in menu.nodes.values():
        if node.id not in reachable:
            add(node.line, f"节点 '{node.id}' 无法从 '{menu.start}' 到达")

    # A node "has a way out" when an exit action is reachable from it; loops without one trap callers.
    can_exit = {n.id for n in menu.nodes.values() if any(a.kind in EXITS for a in _actions(n))}
    changed = True
    while changed:
        changed = False
        for node_id in menu.nodes:
            if node_id not in can_exit and successors(node_id) & can_exit:
                can_exit.add(node_id)
                changed = True
    trapped = "从它到达不了排队、留言、转接或结束语（来电者会被困在菜单里）"
    for node_id in sorted(reachable - can_exit):
        add(menu.nodes[node_id].line, f"节点 '{node_id}' 没有出口：{trapped}")
    return sorted(problems, key=lambda p: (p.line, p.message))
