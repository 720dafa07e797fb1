"""This worker's side of the ACD: its waiting callers, the offers it claims for them, its seat calls.

A thread (`<worker>-acd`) runs the ACD rounds for this worker while it holds callers waiting for
a person, and sleeps otherwise. A round:
1. `AcdStore.sweep()`: seats whose wrap-up time is over become ready (auto-ready);
2. `AcdStore.dispatch(worker=...)`: one optimistic transaction over every queue and seat that
   writes offers for this worker's callers only (the worker that holds a caller places its seat
   leg), while the matching keeps every caller's place whichever worker holds it;
3. offers in flight are checked: one the store no longer shows (the seat logged out while its
   phone rang, and the call went back to the head of its queue) is withdrawn, and the ringing
   cancelled.
Rounds start at once when the store announces a change on `acd:wake` (a caller queued, a seat
ready, a phone registered), else every `acd_dispatch_interval_s`: pub/sub may lose a message,
the timer may not. Offers reach the caller's `QueueWait` on the pjsua2 thread through `post`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import redis

from hotline import bus

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from acd.store import AcdStore, Offer
    from hotline.settings import Settings
    from ivr.legs import LegTable
    from ivr.sip import SipEdge

log = logging.getLogger(__name__)

IDLE_WAIT_S = 5.0  # an idle thread still looks around now and then, in case a kick was missed


class Waiter(Protocol):
    """A caller waiting in a queue (`ivr.queue_wait.QueueWait`), on the pjsua2 thread."""

    def offered(self, extension: str) -> None: ...

    def withdrawn(self, extension: str) -> None: ...


@dataclass(frozen=True)
class SeatTimes:
    """The ACD settings a worker applies (see `hotline.settings`, acd_*)."""

    ring_timeout_s: float  # RONA after this long ringing
    wrap_up_s: float  # 话后处理 before auto-ready
    interval_s: float  # between rounds when nobody wakes the thread
    max_waiting: int | None = None  # more waiting callers than this: the fallback
    fallback: str = "voicemail"  # voicemail, callback or goodbye
    default_aht_s: float = 180.0  # for the expected wait until handle times are measured

    @classmethod
    def from_settings(cls, settings: Settings) -> SeatTimes:
        return cls(
            settings.acd_ring_timeout_s,
            settings.acd_wrap_up_s,
            settings.acd_dispatch_interval_s,
            settings.acd_max_waiting,
            settings.acd_fallback,
            settings.acd_default_handle_s,
        )


class SeatLink:
    def __init__(
        self,
        worker: str,
        redis_url: str,
        post: Callable[[Callable[[], None]], None],
        factory: sessionmaker[Session],
        times: SeatTimes,
        edge: SipEdge,
        legs: LegTable,
    ) -> None:
        self.worker = worker
        self.redis_url = redis_url
        self.post = post
        self.factory = factory
        self.times = times
        self.edge = edge  # seat legs are dialled through it (pjsua2 thread)
        self.legs = legs
        self._waiters: dict[str, Waiter] = {}  # pjsua2 thread only
        self._lock = threading.Lock()
        self._calls: dict[str, str] = {}  # call id -> seat it rings ("" while waiting); both threads
        self._unwanted: list[Offer] = []  # offers that found no caller here: given back next round
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{worker}-acd", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread.is_alive():  # a worker that failed to start never started this thread
            self._thread.join(timeout=5)

    # pjsua2 thread ---------------------------------------------------------------------------
    def join(self, call_id: str, waiter: Waiter) -> None:
        """A caller of this worker waits in a queue (or waits again after a failed offer)."""
        self._waiters[call_id] = waiter
        self._track(call_id, "")

    def ringing(self, call_id: str, extension: str) -> None:
        self._track(call_id, extension)

    def quit(self, call_id: str) -> None:
        """Bridged, or gone: no more offers for this caller."""
        self._waiters.pop(call_id, None)
        with self._lock:
            self._calls.pop(call_id, None)

    def _track(self, call_id: str, extension: str) -> None:
        with self._lock:
            self._calls[call_id] = extension
        self._kick.set()

    def deliver(self, offer: Offer) -> None:
        """An offer made for one of this worker's callers outside a round (a transfer to a seat)."""
        self._deliver(offer)

    def _deliver(self, offer: Offer) -> None:
        waiter = self._waiters.get(offer.call_id)
        if waiter is None:
            # The caller hung up meanwhile (its `leave` frees the seat), or is not ours after all:
            # the offer is given back either way, so that no seat is left offered with no ringing.
            log.info("offer of %s to %s found no caller here", offer.call_id, offer.extension)
            with self._lock:
                self._unwanted.append(offer)
                self._calls.setdefault(offer.call_id, offer.extension)  # so that a round runs
            self._kick.set()
            return
        self.ringing(offer.call_id, offer.extension)
        waiter.offered(offer.extension)

    def _withdraw(self, call_id: str, extension: str) -> None:
        waiter = self._waiters.get(call_id)
        if waiter is not None:
            waiter.withdrawn(extension)

    # The ACD thread --------------------------------------------------------------------------
    def _run(self) -> None:
        store: AcdStore | None = None
        pubsub: redis.client.PubSub | None = None
        while not self._stop.is_set():
            with self._lock:
                calls = dict(self._calls)
            if not calls:
                self._kick.wait(IDLE_WAIT_S)
                self._kick.clear()
                continue
            self._kick.clear()
            try:
                if store is None or pubsub is None:
                    store, pubsub = self._connect()
                self._round(store, calls)
                self._sleep(pubsub)
            except redis.RedisError as exc:
                log.warning("%s: ACD round failed (%s); trying again", self.worker, exc)
                store = pubsub = None
                self._stop.wait(self.times.interval_s)
            except Exception:
                log.exception("%s: ACD round failed", self.worker)
                self._stop.wait(self.times.interval_s)

    def _sleep(self, pubsub: redis.client.PubSub) -> None:
        """Until another process wakes us (not our own announcements), a new caller, or one interval."""
        deadline = time.monotonic() + self.times.interval_s
        while not self._kick.is_set() and (left := deadline - time.monotonic()) > 0:
            message = pubsub.get_message(timeout=min(left, 0.25))
            if message is not None and message.get("data") != self.worker:
                break
        while pubsub.get_message(timeout=0) is not None:
            pass  # several wake-ups are one round

    def _alive(self, store: AcdStore, worker: str) -> bool:
        """Whether `worker` still sends its heartbeat: a dead one's callers hold no seat."""
        # Callers are tagged with the worker's record name (sip-worker-N@host), as heartbeats are.
        return bool(store.redis.exists(f"{bus.HEARTBEAT_PREFIX}:sip:{worker}"))

    def _connect(self) -> tuple[AcdStore, redis.client.PubSub]:
        from acd.history import ChangeRecorder
        from acd.store import WAKE, AcdStore

        client = bus.connect(self.redis_url, timeout_s=2.0)
        store = AcdStore(client, on_change=ChangeRecorder(self.factory, bus.EventBus(client)))
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(WAKE)
        return store, pubsub

    def _round(self, store: AcdStore, calls: dict[str, str]) -> None:
        from acd.seat_states import SeatEvent, SeatTransitionError

        with self._lock:
            unwanted, self._unwanted = self._unwanted, []
            for offer in unwanted:
                self._calls.pop(offer.call_id, None)
        for offer in unwanted:
            try:
                store.seat_event(offer.extension, SeatEvent.CANCEL, call_id=offer.call_id)
            except (SeatTransitionError, KeyError):
                pass  # the caller's leave freed the seat already
        store.sweep()
        if any(not seat for seat in calls.values()):
            alive = functools.partial(self._alive, store)
            for offer in store.dispatch(worker=self.worker, is_alive=alive):
                log.info("%s: offering %s to seat %s", self.worker, offer.call_id, offer.extension)
                self.post(lambda offer=offer: self._deliver(offer))  # type: ignore[misc]
        for call_id, seat in calls.items():
            if seat and store.offered_to(call_id) != seat:
                self.post(lambda c=call_id, s=seat: self._withdraw(c, s))  # type: ignore[misc]
