"""One caller's walk through a menu: input in, steps out (play, collect, leave the menu).

No I/O: the SIP worker performs the steps (plays prompts, collects DTMF or speech) and feeds
back what the caller did. Every input and decision is appended to `path`, which becomes the
CDR's IVR path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ivr.menu import Action, ActionKind, Menu, Node


@dataclass(frozen=True)
class Play:
    prompts: tuple[str, ...]


@dataclass(frozen=True)
class Collect:
    """Wait for DTMF (or one of `keywords` spoken) with these timeouts."""

    node: str
    timeout_s: float
    interdigit_s: float
    max_digits: int
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Leave:
    """The menu hands the call on: queue, voicemail, transfer, ticket status, or goodbye."""

    action: Action


Step = Play | Collect | Leave


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MenuRun:
    def __init__(self, menu: Menu, now: Callable[[], dt.datetime] = _utcnow) -> None:
        self.menu = menu
        self.now = now
        self.node: Node = menu.node(menu.start)
        self.path: list[dict[str, Any]] = []
        self._invalid = 0
        self._silent = 0
        self.finished = False

    # Inputs --------------------------------------------------------------------------------
    def start(self) -> list[Step]:
        return self._enter(self.menu.start, via="start")

    def on_digits(self, digits: str) -> list[Step]:
        return self._on_key(digits, via="dtmf")

    def on_speech(self, word: str) -> list[Step]:
        key = self.node.keywords.get(word.strip())
        if key is None:
            self._record(input=word, via="speech", result="not_understood")
            return self._invalid_input()
        return self._on_key(key, via="speech", word=word.strip())

    def on_no_input(self) -> list[Step]:
        self._silent += 1
        if self._silent > self.node.no_input_retries:
            self._record(via="timeout", result="fallback")
            return self._act(self.node.fallback)
        self._record(via="timeout", result="replay")
        return [Play(self.node.prompts), self._collect()]

    def resume(self) -> list[Step]:
        """Back to the current node after a step that returns (ticket status read out)."""
        self.finished = False
        return [Play(self.node.prompts), self._collect()]

    # Internals -----------------------------------------------------------------------------
    def _on_key(self, digits: str, via: str, word: str = "") -> list[Step]:
        action = self.node.options.get(digits)
        if action is None:
            self._record(input=digits, via=via, result="invalid")
            return self._invalid_input()
        self._record(input=digits, via=via, action=action.kind.value, **({"word": word} if word else {}))
        return self._act(action)

    def _invalid_input(self) -> list[Step]:
        self._invalid += 1
        if self._invalid > self.node.retries:
            self._record(via="retries", result="fallback")
            return self._act(self.node.fallback)
        return [Play((self.node.invalid_prompt, *self.node.prompts)), self._collect()]

    def _act(self, action: Action) -> list[Step]:
        match action.kind:
            case ActionKind.SUBMENU:
                return self._enter(action.node, via="submenu")
            case ActionKind.HOURS:
                is_open = self.menu.hours is None or self.menu.hours.is_open(self.now())
                return self._enter(action.day if is_open else action.night, via="hours")
            case ActionKind.PLAY:
                return [Play((action.prompt, *self.node.prompts)), self._collect()]
            case _:
                self.finished = action.kind is not ActionKind.TICKET_STATUS
                return [Leave(action)]

    def _enter(self, node_id: str, via: str) -> list[Step]:
        self.node = self.menu.node(node_id)
        self._invalid = self._silent = 0
        self.path.append({"node": node_id, "via": via})
        return [Play(self.node.prompts), self._collect()]

    def _collect(self) -> Collect:
        node = self.node
        return Collect(node.id, node.timeout_s, node.interdigit_s, node.max_digits, tuple(node.keywords))

    def _record(self, **entry: Any) -> None:
        self.path.append({"node": self.node.id, **entry})
