"""Long-poll waits that cost a thread but no database connection per waiting agent.

One watcher thread per web process looks up every waited-on request in a single query a few
times a second and wakes the waiters whose request has settled (decided and past the undo
window, cancelled, or auto-approved) or waits on the agent (a reviewer asked it something). A
waiter blocks on an Event, holding no connection, so
100 waiting agents cost 100 idle threads and one query every WATCH_INTERVAL, not 100
connections polling. `HITL_API_MAX_WAITERS` caps the waiters of one process below its thread
count, so waits can never take the threads that serve everything else, and
`HITL_API_MAX_WAITERS_PER_AGENT` caps each agent's share of them, so one agent's wait loops
cannot take every slot from the others.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, connections
from django.db.models import Q
from django.utils import timezone

from .db_outage import database_unreachable, pool_exhausted
from .models import ReviewRequest

log = logging.getLogger(__name__)

# How often the watcher looks; the agent hears of a decision at most this long after it
# becomes effective (plus one query).
WATCH_INTERVAL = 0.25


def settled(ids: list[int]) -> set[int]:
    """The requests an agent may now learn the outcome of, or must answer a reviewer on."""
    now = timezone.now()
    pending = ReviewRequest.Status.PENDING
    return set(
        ReviewRequest.objects.filter(pk__in=ids)
        .filter(
            (~Q(status=pending) & (Q(decision__isnull=True) | Q(decision__effective_at__lte=now)))
            | Q(status=pending, turn=ReviewRequest.Turn.AGENT)
        )
        .values_list("pk", flat=True)
    )


def release_connection() -> None:
    """Give this thread's database connection back while it blocks: to the process's pool on
    PostgreSQL (not inside a transaction, as in tests that wrap each test in one)."""
    if not connection.in_atomic_block:
        connection.close()


@dataclass(frozen=True)
class Refusal:
    """Why a wait was not taken: `limit` is "agent" (the agent's share of this process) or
    "server" (the process's cap), `cap` that limit, and `retry_after` the whole seconds until
    a slot under it frees at the latest: when the first of the waits holding it times out."""

    limit: str
    cap: int
    retry_after: int


@dataclass(eq=False)
class _Waiter:
    agent_id: int
    ends_at: float  # time.monotonic() when its timeout runs out
    event: threading.Event = field(default_factory=threading.Event)


class Watcher:
    def __init__(self, interval: float = WATCH_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Condition()
        self._waiters: dict[int, list[_Waiter]] = {}  # by request id, for the watcher
        self._by_agent: dict[int, list[_Waiter]] = {}  # for each agent's share
        self._count = 0
        self._thread: threading.Thread | None = None

    @property
    def waiting(self) -> int:
        return self._count

    def wait(self, request_id: int, agent_id: int, timeout: float) -> bool | Refusal:
        """Block until the request settles or turns to the agent (True) or `timeout` passes
        (False); a Refusal when
        the agent already holds its share of this process's waits, or the process its cap."""
        waiter = _Waiter(agent_id, time.monotonic() + timeout)
        with self._lock:
            refusal = self._refusal(agent_id)
            if refusal:
                return refusal
            self._waiters.setdefault(request_id, []).append(waiter)
            self._by_agent.setdefault(agent_id, []).append(waiter)
            self._count += 1
            if self._thread is None or not self._thread.is_alive():
                # Started lazily, so each gunicorn worker gets its own after the fork.
                self._thread = threading.Thread(target=self._run, name="hitl-longpoll", daemon=True)
                self._thread.start()
            self._lock.notify()
        try:
            return waiter.event.wait(timeout)
        finally:
            with self._lock:
                for index, key in ((self._waiters, request_id), (self._by_agent, agent_id)):
                    waiters = index[key]
                    waiters.remove(waiter)
                    if not waiters:
                        del index[key]
                self._count -= 1

    def _refusal(self, agent_id: int) -> Refusal | None:
        """The limit a new wait of this agent would break, if any (called under the lock). The
        agent's own share is checked first: that is the limit it can do something about."""
        mine = self._by_agent.get(agent_id, [])
        share = settings.HITL_API_MAX_WAITERS_PER_AGENT
        if len(mine) >= share:
            return Refusal("agent", share, _seconds_until_first_end(mine))
        cap = settings.HITL_API_MAX_WAITERS
        if self._count >= cap:
            everyone = [waiter for waiters in self._by_agent.values() for waiter in waiters]
            return Refusal("server", cap, _seconds_until_first_end(everyone))
        return None

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiters:
                    self._lock.wait()
                ids = list(self._waiters)
            try:
                done = settled(ids)
            except Exception as exc:  # a database hiccup must not kill the watcher
                if database_unreachable(exc) or pool_exhausted(exc):
                    # A restart: one line per look, not a traceback; waiters time out, and
                    # those still waiting once it is back hear their decision.
                    log.warning("long-poll watcher cannot reach the database: %s", exc)
                else:
                    log.exception("long-poll watcher query failed")
                done = set()
            # Hand the connection back between looks: on PostgreSQL it returns to the process's
            # pool, where request threads use it for the other 0.25 s.
            connections.close_all()
            with self._lock:
                for request_id in done:
                    for waiter in self._waiters.get(request_id, []):
                        waiter.event.set()
            time.sleep(self.interval)


def _seconds_until_first_end(waiters: list[_Waiter]) -> int:
    """Whole seconds until the first of these waits times out (so frees its slot), at least 1:
    a decision may free one sooner, but no later than that."""
    if not waiters:
        return 1
    first = min(waiter.ends_at for waiter in waiters)
    return max(math.ceil(first - time.monotonic()), 1)


watcher = Watcher()
