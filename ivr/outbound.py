"""Outbound calls requested over Redis: `originate` adds a request, SIP workers claim and dial it.

Any process may ask for a call: domain code enqueues the RQ job `ivr.outbound.originate_job` by
dotted name (tickets may not import ivr), anything else calls `originate` with a Redis client.
No pjsua2 here; the worker side is `ivr.dialer`.

A request lives in one hash (`hotline:outbound:req:<id>`) and, until it is finished, in one sorted
set (`hotline:outbound:pending`) scored by when it may next be claimed. A worker with free legs
claims the oldest claimable request in one Lua script, which also pushes its score a lease ahead:
exactly one worker gets it. While the call lasts the worker renews the lease; a worker that dies
stops renewing, the lease runs out and another worker claims the request again (at most
`MAX_CLAIMS` times). A request no worker can take yet simply stays pending. The result (answered,
busy, no answer, failed) is written to the hash, kept a week, and published as `outbound.result`;
trying again after busy or no answer is the requester's decision (a new request).
"""

from __future__ import annotations

import enum
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

PENDING = "hotline:outbound:pending"
WAKE = "hotline:outbound:wake"  # pub/sub: a request may be claimed now (idle workers look at once)
REQUEST_PREFIX = "hotline:outbound:req:"
LEASE_S = 30.0  # a claim not renewed within this is taken to be a dead worker's
MAX_CLAIMS = 3  # a request that kept losing its worker is failed rather than tried forever
KEEP_S = 7 * 86400  # how long a finished request's result can be read back
RESULT_EVENT = "outbound.result"


class Result(enum.StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"


class State(enum.StrEnum):
    PENDING = "pending"  # waiting for a worker
    DIALING = "dialing"  # claimed: ringing or in the call
    DONE = "done"


@dataclass(frozen=True)
class OutboundRequest:
    """What to call and what to do once answered."""

    id: str
    target: str  # a phone number (out through the SIP edge and its trunk) or a sip: URI
    scene: str  # what the callee hears: "revisit", "notice" (see ivr.dialer.SCENES)
    data: dict[str, Any] = field(default_factory=dict)
    caller_id: str = "12345"
    ring_s: float = 30.0  # give up (no answer) after ringing this long
    created_at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> OutboundRequest:
        return cls(**json.loads(text))


def originate(
    client: redis.Redis,
    target: str,
    scene: str,
    data: dict[str, Any] | None = None,
    *,
    request_id: str = "",
    caller_id: str = "12345",
    ring_s: float = 30.0,
) -> str:
    """Ask for a call; returns the request id. Idempotent: a known `request_id` is not asked twice."""
    if not target.strip():
        raise ValueError("an outbound call needs a target number or SIP URI")
    request = OutboundRequest(
        id=request_id or uuid.uuid4().hex,
        target=target.strip(),
        scene=scene,
        data=dict(data or {}),
        caller_id=caller_id,
        ring_s=ring_s,
    )
    key = REQUEST_PREFIX + request.id
    # HSETNX on the request field makes a second originate with the same id a no-op.
    if client.hsetnx(key, "request", request.to_json()):
        pipe = client.pipeline()
        pipe.hset(key, mapping={"state": State.PENDING.value, "claims": 0})
        pipe.zadd(PENDING, {request.id: request.created_at})
        pipe.publish(WAKE, request.id)
        pipe.execute()
    return request.id


def originate_job(target: str, scene: str, data: dict[str, Any] | None = None, request_id: str = "") -> str:
    """The RQ job (`ivr.outbound.originate_job`): `originate` with the hotline's own Redis."""
    from hotline import bus
    from hotline.settings import load_settings

    client = bus.connect(load_settings().effective_redis_url)
    try:
        return originate(client, target, scene, data, request_id=request_id)
    finally:
        client.close()


def status(client: redis.Redis, request_id: str) -> dict[str, str]:
    """The request's state and, once done, its result (`result`, `call_id`, `sip_status`, ...)."""
    found: dict[str, str] = client.hgetall(REQUEST_PREFIX + request_id)
    found.pop("request", None)
    return found


# The worker side (ivr.dialer) ---------------------------------------------------------------------
# KEYS[1] pending set; ARGV: now, lease, worker, key prefix, max claims, keep.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #ids == 0 then return false end
local id = ids[1]
local key = ARGV[4] .. id
local claims = redis.call('HINCRBY', key, 'claims', 1)
if claims > tonumber(ARGV[5]) then
  redis.call('ZREM', KEYS[1], id)
  redis.call('HSET', key, 'state', 'done', 'result', 'failed', 'reason', 'worker_lost')
  redis.call('EXPIRE', key, ARGV[6])
  return {id, false}
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id)
redis.call('HSET', key, 'state', 'dialing', 'owner', ARGV[3])
return {id, redis.call('HGET', key, 'request')}
"""
# KEYS[1] pending set; ARGV: now, lease, worker, key prefix, ids...
_RENEW = """
for i = 5, #ARGV do
  if redis.call('HGET', ARGV[4] .. ARGV[i], 'owner') == ARGV[3] then
    redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[i])
  end
end
return true
"""


@dataclass
class Claimed:
    """A claim: the request to dial, or only the id of one given up after too many claims."""

    id: str
    request: OutboundRequest | None


def claim(
    client: redis.Redis, worker: str, now: float | None = None, lease_s: float = LEASE_S
) -> Claimed | None:
    """The oldest claimable request, now leased to `worker` for `lease_s`; None if there is none."""
    now = time.time() if now is None else now
    found = client.eval(_CLAIM, 1, PENDING, now, lease_s, worker, REQUEST_PREFIX, MAX_CLAIMS, int(KEEP_S))
    if not found:
        return None
    request_id, text = found[0], found[1]
    return Claimed(str(request_id), OutboundRequest.from_json(text) if text else None)


def renew(client: redis.Redis, worker: str, request_ids: list[str], now: float | None = None) -> None:
    """Extend the leases `worker` holds, so no other worker takes its calls."""
    if request_ids:
        now = time.time() if now is None else now
        client.eval(_RENEW, 1, PENDING, now, LEASE_S, worker, REQUEST_PREFIX, *request_ids)


def finish(client: redis.Redis, request_id: str, result: dict[str, Any]) -> None:
    """The request is done: out of the pending set, its result kept for a week."""
    key = REQUEST_PREFIX + request_id
    fields = {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in result.items()}
    pipe = client.pipeline()
    pipe.zrem(PENDING, request_id)
    pipe.hset(key, mapping={**fields, "state": State.DONE.value})
    pipe.expire(key, int(KEEP_S))
    pipe.execute()


def release(client: redis.Redis, request_id: str) -> None:
    """Give a claim back unused (no room after all, or the worker is stopping): pending again."""
    key = REQUEST_PREFIX + request_id
    pipe = client.pipeline()
    pipe.hincrby(key, "claims", -1)
    pipe.hset(key, mapping={"state": State.PENDING.value, "owner": ""})
    pipe.zadd(PENDING, {request_id: time.time()}, xx=True)
    pipe.publish(WAKE, request_id)
    pipe.execute()
