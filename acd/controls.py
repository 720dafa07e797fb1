"""Call controls: what an agent or a supervisor asks of the softswitch worker that holds a call.

The desk never imports `ivr`; it sends a `Command` over Redis with `send`, which finds the worker
holding the call (the `worker` field of the call's ACD record, `acd:call:<id>`) and publishes the
command on that worker's channel (`hotline:ctl:<worker>`). Redis answers PUBLISH with the number of
subscribers that got it, so a worker that is gone is known at once (`ControlUnavailable`), never
by a button that silently does nothing. The worker carries the command out on its pjsua2 thread
(`ivr.call_control`) and publishes the outcome as a `call.control` event (`id`, `call_id`,
`action`, `ok`, `error`) to the sender's room and the supervisors'.

Actions (who may send them is the desk's business, see agent_desk):
- hold / resume: the caller hears hold music, the seat is `held`; resume bridges them again;
- hang_up: the agent ends the call (the caller hears the goodbye first);
- survey: the agent leaves (wrap-up) and the caller is asked for a rating by key (1/2/3),
  stored on the CDR (`calls.survey_score`) and shown on the ticket written from the call;
- transfer_queue (`target` a queue): the agent leaves, the caller waits in that queue, ahead of
  callers who came later;
- transfer_seat (`target` a colleague's extension): refused (`seat_busy`) unless that seat is
  ready with its phone registered; then the agent leaves and the caller is offered to that seat
  first (if it does not answer, the caller keeps its place in the queue for the next seat);
- consult (`target` a colleague's extension), then complete_transfer or cancel_consult: the
  attended transfer. The caller is put on hold (music) and the colleague's phone rung (the seat
  must be ready: `seat_busy` otherwise); agent and colleague talk; complete_transfer connects
  the caller to the colleague and the agent leaves (hanging up does the same once the colleague
  is on the line); cancel_consult, or the colleague hanging up or not answering, brings the
  caller back to the agent;
- transfer_number (`target` a number, e.g. a department hotline) and emergency (`target` one
  of `settings.emergency_numbers`): the number is called and joined to the call (三方通话); the
  agent stays until `drop_agent`;
- listen / whisper / barge (`target` the supervisor's extension): the supervisor's phone is
  called and hears both sides; whisper lets the agent alone hear the supervisor, barge both;
  sending another of the three changes the mode; `stop_listening` ends it.
"""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from acd.records import Unavailable, call_key

CHANNEL_PREFIX = "hotline:ctl"
RESULT_EVENT = "call.control"


class Action(enum.StrEnum):
    HOLD = "hold"
    RESUME = "resume"
    HANG_UP = "hang_up"
    SURVEY = "survey"
    TRANSFER_QUEUE = "transfer_queue"
    TRANSFER_SEAT = "transfer_seat"
    CONSULT = "consult"
    COMPLETE_TRANSFER = "complete_transfer"
    CANCEL_CONSULT = "cancel_consult"
    TRANSFER_NUMBER = "transfer_number"
    EMERGENCY = "emergency"
    DROP_AGENT = "drop_agent"
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"
    STOP_LISTENING = "stop_listening"


# What each action needs in `target`.
NEEDS_TARGET = {
    Action.TRANSFER_QUEUE,
    Action.TRANSFER_SEAT,
    Action.CONSULT,
    Action.TRANSFER_NUMBER,
    Action.EMERGENCY,
    Action.LISTEN,
    Action.WHISPER,
    Action.BARGE,
}
SUPERVISION = {Action.LISTEN, Action.WHISPER, Action.BARGE, Action.STOP_LISTENING}


class ControlUnavailable(Unavailable):
    """The command cannot reach a worker: `reason` is no_call (the call is over or unknown) or
    no_worker (the worker holding it does not listen: stopped or dead)."""


@dataclass(frozen=True)
class Command:
    call_id: str
    action: Action
    target: str = ""
    by_user: int | None = None  # who asked: the result goes to that user's room
    seat: str = ""  # the agent's extension, for agent actions: refused if the seat is not on the call
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.action in NEEDS_TARGET and not self.target:
            raise ValueError(f"{self.action.value} needs a target")

    def encode(self) -> str:
        return json.dumps({**asdict(self), "action": self.action.value})

    @classmethod
    def decode(cls, raw: str | bytes) -> Command:
        """A command from its JSON; ValueError for anything malformed."""
        try:
            data: dict[str, Any] = json.loads(raw)
            by_user = data.get("by_user")
            return cls(
                call_id=str(data["call_id"]),
                action=Action(data["action"]),
                target=str(data.get("target") or ""),
                by_user=int(by_user) if by_user is not None else None,
                seat=str(data.get("seat") or ""),
                id=str(data.get("id") or uuid.uuid4().hex),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed call control: {exc}") from exc


def channel(worker: str) -> str:
    """The pub/sub channel of one softswitch worker (its record name, `sip-worker-N@host`)."""
    return f"{CHANNEL_PREFIX}:{worker}"


def worker_of(client: redis.Redis, call_id: str) -> str:
    """The worker holding a call in the ACD (waiting or bridged), or ""."""
    worker = client.hget(call_key(call_id), "worker")
    if isinstance(worker, bytes):
        return worker.decode()
    return str(worker or "")


def send(client: redis.Redis, command: Command) -> str:
    """Hand the command to the worker holding its call; its id. `ControlUnavailable` if none can."""
    worker = worker_of(client, command.call_id)
    if not worker:
        raise ControlUnavailable("no_call")
    if not client.publish(channel(worker), command.encode()):
        raise ControlUnavailable("no_worker")
    return command.id


def result_rooms(by_user: int | None) -> tuple[str, ...]:
    """Where a command's outcome goes: the supervisors, and whoever sent it."""
    return ("role:supervisor", "role:admin", *((f"user:{by_user}",) if by_user is not None else ()))
