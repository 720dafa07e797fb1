"""Call controls from the desk and the wallboard: who may ask what of which call, and sending it.

A command goes to the softswitch worker holding the call (`acd.controls.send`, over Redis); the
worker's outcome comes back later as a `call.control` event, which the page shows. Here: an agent
acts only on its own seat's current call, a supervisor listens from its own seat, targets are
checked, every command sent (or found undeliverable) is audited, and refusals are in Chinese.

An attended transfer in progress is read from the ACD, never kept here: while an agent consults,
its seat is held on the call and the colleague's seat is offered (ringing) or talking on the
same call, and the call record still names the agent's seat (`Consultation`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app, jsonify
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_limiter.util import get_remote_address
from flask_login import current_user

from acd import controls
from acd.controls import Action, Command, ControlUnavailable
from acd.seat_states import SeatState
from acd.store import AcdStore
from hotline.accounts import audit
from hotline.db import transaction

AGENT_ACTIONS = frozenset(Action) - controls.SUPERVISION
ON_CALL = frozenset({SeatState.TALKING, SeatState.HELD})
# The national emergency lines (国办函〔2025〕66号: transferred at once); which ones a centre offers
# is `settings.emergency_numbers` (the worker refuses any other).
EMERGENCY_LABELS = {"110": "报警", "119": "火警", "120": "急救", "122": "交通事故"}
ACTION_LABELS = {
    Action.HOLD: "保持",
    Action.RESUME: "恢复通话",
    Action.HANG_UP: "挂断",
    Action.SURVEY: "转满意度评价",
    Action.TRANSFER_QUEUE: "转队列",
    Action.TRANSFER_SEAT: "转座席",
    Action.CONSULT: "咨询转接",
    Action.COMPLETE_TRANSFER: "完成转接",
    Action.CANCEL_CONSULT: "取消咨询",
    Action.TRANSFER_NUMBER: "转接号码",
    Action.EMERGENCY: "紧急转接",
    Action.DROP_AGENT: "退出三方通话",
    Action.LISTEN: "监听",
    Action.WHISPER: "耳语",
    Action.BARGE: "强插",
    Action.STOP_LISTENING: "停止监听",
}
UNAVAILABLE = {"no_call": ("通话已结束", 409), "no_worker": ("软交换暂时不可用，请稍后再试", 503)}
NUMBER = re.compile(r"\d{3,20}")
# While consulting: what the agent may still do (hanging up hands the call over, or queues the
# caller if the colleague has not answered yet: the worker decides).
WHILE_CONSULTING = frozenset({Action.COMPLETE_TRANSFER, Action.CANCEL_CONSULT, Action.HANG_UP})
CONSULTING = "正在咨询同事，请先完成转接或取消咨询"
LIMIT = "30 per minute"  # per user: far above what a person clicks, far below a stuck script


class Refused(Exception):
    """The command is not sent: `message` is what the page shows."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def answer(self) -> ResponseReturnValue:
        return jsonify(error=self.message), self.status


def _action(name: str, allowed: Collection[Action]) -> Action:
    try:
        action = Action(name)
    except ValueError:
        raise Refused("未知的通话操作", 400) from None
    if action not in allowed:
        raise Refused("未知的通话操作", 400)
    return action


def _call_on(store: AcdStore, extension: str, call_id: Any, missing: str) -> str:
    """The call the seat is talking on (or holding), if it is the one the page showed."""
    try:
        live = store.seat(extension)
    except KeyError:
        raise Refused(missing) from None
    if live.state not in ON_CALL or not live.call_id:
        raise Refused(missing)
    if str(call_id or "") != live.call_id:
        raise Refused("该通话已不是当前通话，请以页面最新状态为准")
    return live.call_id


class ConsultRole(enum.StrEnum):
    CONSULTING = "consulting"  # this seat's agent asked a colleague
    CONSULTED = "consulted"  # a colleague asks this seat


@dataclass(frozen=True)
class Consultation:
    """An attended transfer in progress on a seat's call, as the ACD shows it.

    `other` is the colleague's seat on the agent's side, the agent's seat (whose call it still is)
    on the colleague's; `answered`: the colleague's phone was answered, so the transfer can be
    completed.
    """

    role: ConsultRole
    other: str
    answered: bool


def consultation(store: AcdStore, extension: str) -> Consultation | None:
    """The attended transfer the seat at `extension` is part of now, if any."""
    try:
        mine = store.seat(extension)
    except KeyError:
        return None
    if mine.state not in (SeatState.OFFERED, SeatState.TALKING, SeatState.HELD) or not mine.call_id:
        return None
    owner = store.offered_to(mine.call_id)
    if owner and owner != extension:
        # Offered or talking on a call whose seat is another: reserved by an agent who consults.
        return Consultation(ConsultRole.CONSULTED, owner, mine.state is SeatState.TALKING)
    # The worker holds the caller as soon as the colleague's seat is reserved: only a held seat
    # can be consulting, and only then are the other seats read.
    if owner != extension or mine.state is not SeatState.HELD:
        return None
    for seat in store.seats():
        if (
            seat.extension != extension
            and seat.call_id == mine.call_id
            and seat.state in (SeatState.OFFERED, SeatState.TALKING)
        ):
            return Consultation(ConsultRole.CONSULTING, seat.extension, seat.state is SeatState.TALKING)
    return None


def _allowed_during(action: Action, consult: Consultation | None) -> None:
    """Refuse what does not fit the attended transfer in progress (or the lack of one)."""
    if consult is not None and consult.role is ConsultRole.CONSULTED:
        raise Refused("同事正在向您咨询，转接完成后才能操作该通话")
    if consult is None and action in (Action.COMPLETE_TRANSFER, Action.CANCEL_CONSULT):
        raise Refused("当前没有进行中的咨询转接")
    if consult is not None and action not in WHILE_CONSULTING:
        raise Refused(CONSULTING)
    if consult is not None and action is Action.COMPLETE_TRANSFER and not consult.answered:
        raise Refused("同事尚未接听，暂不能完成转接")


def emergency_numbers() -> dict[str, str]:
    """The emergency lines this centre transfers to, each with its name."""
    numbers = current_app.extensions["hotline"]["settings"].emergency_numbers
    return {number: EMERGENCY_LABELS.get(number, "紧急电话") for number in numbers}


def _target(action: Action, raw: Any, queues: Collection[str], colleagues: Collection[str]) -> str:
    target = str(raw or "").strip()
    if action is Action.TRANSFER_QUEUE and target not in queues:
        raise Refused("请选择要转入的队列", 400)
    # Whether the colleague is free is the worker's to say (seat_busy): it decides at the moment
    # it hands the caller over.
    if action is Action.TRANSFER_SEAT and target not in colleagues:
        raise Refused("请选择要转接的座席", 400)
    if action is Action.CONSULT and target not in colleagues:
        raise Refused("请选择要咨询的座席", 400)
    if action is Action.TRANSFER_NUMBER:
        target = re.sub(r"[\s-]", "", target)
        if not NUMBER.fullmatch(target):
            raise Refused("请输入正确的转接号码（3到20位数字）", 400)
    if action is Action.EMERGENCY and target not in (numbers := emergency_numbers()):
        raise Refused(f"紧急转接只能转 {'、'.join(numbers)}", 400)
    return target if action in controls.NEEDS_TARGET else ""


def agent_command(
    store: AcdStore,
    extension: str,
    action: str,
    body: Mapping[str, Any],
    queues: Collection[str],
    colleagues: Collection[str],
) -> Command:
    """What the agent at `extension` asks of its own seat's call (`colleagues`: the other seats'
    extensions, where a call may be transferred)."""
    chosen = _action(action, AGENT_ACTIONS)
    call_id = _call_on(store, extension, body.get("call_id"), "您的座席当前没有通话")
    _allowed_during(chosen, consultation(store, extension))
    target = _target(chosen, body.get("target"), queues, colleagues)
    return Command(call_id, chosen, target, by_user=current_user.id, seat=extension)


def supervision_command(
    store: AcdStore, own_extension: str | None, action: str, body: Mapping[str, Any]
) -> Command:
    """A supervisor's listen/whisper/barge/stop on another seat's call, from its own seat's phone."""
    chosen = _action(action, controls.SUPERVISION)
    if not own_extension:
        raise Refused("请先为班长分配座席分机")
    extension = str(body.get("extension") or "")
    if extension == own_extension:
        raise Refused("不能监听自己座席的通话")
    call_id = _call_on(store, extension, body.get("call_id"), "该座席当前不在通话中")
    return Command(call_id, chosen, own_extension, by_user=current_user.id)


def send(command: Command) -> ResponseReturnValue:
    """Hand the command to the worker holding the call, audit it, and answer the page."""
    ext = current_app.extensions["hotline"]
    try:
        controls.send(ext["acd"].redis, command)
        result = "sent"
    except ControlUnavailable as exc:
        result = exc.reason
    with transaction(ext["db"]) as session:
        detail = {
            "action": command.action.value,
            "target": command.target,
            "seat": command.seat,
            "command": command.id,
            "result": result,
        }
        audit(
            session,
            "call.control",
            actor_id=current_user.id,
            target_type="call",
            target_id=command.call_id,
            detail=detail,
        )
    if result in UNAVAILABLE:
        message, status = UNAVAILABLE[result]
        return jsonify(error=message), status
    return jsonify(id=command.id, action=command.action.value, label=ACTION_LABELS[command.action]), 202


def _user_key() -> str:
    return f"user:{current_user.id}" if current_user.is_authenticated else get_remote_address()


def limit_per_user(endpoint: str) -> Callable[[BlueprintSetupState], None]:
    """A blueprint `record_once` hook: rate-limit the view `endpoint` per user with the app's limiter."""

    def setup(state: BlueprintSetupState) -> None:
        limiter = state.app.extensions["hotline"].get("limiter")
        if limiter is None:
            raise RuntimeError("register the desk after hotline.auth.init_auth (its limiter)")
        view = state.app.view_functions[endpoint]
        state.app.view_functions[endpoint] = limiter.limit(LIMIT, key_func=_user_key)(view)

    return setup


def too_many(_error: Exception) -> ResponseReturnValue:
    return jsonify(error="操作过于频繁，请稍后再试"), 429
