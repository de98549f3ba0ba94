"""Long-poll waits that cost no database connection per waiting agent, and when parked no
thread either.

One watcher thread per web process looks up every waited-on request in a single query a few
times a second and wakes the waiters whose request has settled (decided and past the undo
window, cancelled, or auto-approved) or waits on the agent (a reviewer asked it something).

A waiter is one of two kinds. A *thread* waiter (WSGI servers, the MCP server) blocks its
thread on an Event, holding no connection: `HITL_API_MAX_WAITERS` caps them below the
process's thread count, so waits never take the threads that serve everything else. A
*parked* waiter (the Procfile's ASGI server, reviews.wait_door) is a reservation the view
makes and the door's coroutine claims: it holds an asyncio future and its socket, some 25 KB
in all (bench/many_agents.py), so `HITL_API_MAX_PARKED_WAITS` is a memory bound, in the tens
of thousands. Each kind caps one
agent's share at a quarter of its cap (`HITL_API_MAX_WAITERS_PER_AGENT` for threads), so one
agent's wait loops cannot take every slot from the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, connections
from django.db.models import BooleanField, ExpressionWrapper, Max, Q
from django.utils import timezone

from . import among  # noqa: F401  (the __among lookup)
from .db_outage import database_unreachable, pool_exhausted
from .models import Reversal, ReviewRequest

log = logging.getLogger(__name__)

# The door (reviews.wait_door) marks the waits it can park with this request header, holding a
# value only this process knows, so no client can ask for a parked answer itself; the view
# answers such a wait with PARK_HEADER (its ticket) instead of blocking a thread.
DOOR_HEADER = "X-HITL-Door"
DOOR_KEY = secrets.token_hex(16)
PARK_HEADER = "X-HITL-Park"
# A parked wait may last this long (a thread's, 60 s); the door says so in this header of
# every wait's answer, so the client asks for as much.
MAX_PARKED_WAIT = 300
MAX_WAIT_HEADER = "X-HITL-Max-Wait"

# How often the watcher looks; the agent hears of a decision at most this long after it
# becomes effective (plus one query).
WATCH_INTERVAL = 0.1


def _ready() -> Q:
    """A request an agent may now learn the outcome of, or must answer a reviewer on."""
    now = timezone.now()
    pending = ReviewRequest.Status.PENDING
    return (
        ~Q(status=pending) & (Q(decision__isnull=True) | Q(decision__effective_at__lte=now))
    ) | Q(status=pending, turn=ReviewRequest.Turn.AGENT)


def _upcoming() -> Q:
    """Decided, the decision still in its undo window: final at a moment known in advance."""
    pending = ReviewRequest.Status.PENDING
    return ~Q(status=pending) & Q(decision__effective_at__gt=timezone.now())


def look(ids: list[int]) -> tuple[set[int], set[int]]:
    """Which of these requests a wait on them would answer now, and which have a decision
    that will be final once its undo window has passed, in one query."""
    ready = ExpressionWrapper(_ready(), output_field=BooleanField())
    rows = (
        ReviewRequest.objects.filter(pk__among=ids)
        .filter(_ready() | _upcoming())
        .order_by()
        .values_list("pk", ready)
    )
    now, soon = set(), set()
    for pk, is_ready in rows:
        (now if is_ready else soon).add(pk)
    return now, soon


def wait_state(agent_id: int, public_id: Any) -> tuple[int, bool] | None:
    """The agent's request's id and whether a wait on it would answer now, in one light query
    (what the door parks a wait on); None when the agent has no such request."""
    ready = ExpressionWrapper(_ready(), output_field=BooleanField())
    found = ReviewRequest.objects.filter(agent_id=agent_id, public_id=public_id, is_check=False)
    return next(iter(found.order_by().values_list("pk", ready)[:1]), None)


def last_reversals(after_by_agent: dict[int, int]) -> dict[int, int]:
    """The id of the latest reversal of each of these agents that has one newer than the
    given id, in one query."""
    newer = Q()
    for agent_id, after in after_by_agent.items():
        newer |= Q(agent_id=agent_id, pk__gt=after)
    rows = Reversal.objects.filter(newer).order_by().values("agent_id").annotate(last=Max("pk"))
    return {row["agent_id"]: row["last"] for row in rows}


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
    setting: str = "HITL_API_MAX_WAITERS"  # the setting `cap` comes from


@dataclass(eq=False)
class _Waiter:
    agent_id: int
    ends_at: float  # time.monotonic() when its timeout runs out
    event: threading.Event = field(default_factory=threading.Event)
    parked: bool = False
    # A parked waiter's coroutine side, once the door has claimed it.
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future | None = None
    # Called (on `loop`) once the request is decided and waits out the undo window.
    on_decided: Callable[[], None] | None = None
    told: bool = False
    # A wait on the agent's feed of reversals (GET /reversals) rather than on one request:
    # woken by any reversal of its agent's requests with an id above `after`.
    feed: bool = False
    after: int = 0


# A parked reservation the door has not claimed within this long after its timeout is dropped
# (the door always claims at once; this only bounds what a failure between the two leaks).
UNCLAIMED_GRACE = 10.0


class Watcher:
    def __init__(self, interval: float = WATCH_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Condition()
        self._waiters: dict[int, list[_Waiter]] = {}  # by request id, for the watcher
        self._feeds: dict[int, list[_Waiter]] = {}  # reversal feeds, by agent id
        self._by_agent: dict[int, list[_Waiter]] = {}  # for each agent's share
        self._tickets: dict[str, tuple[int, _Waiter]] = {}  # parked, by the door's ticket
        self._count = 0
        self._parked = 0
        self._thread: threading.Thread | None = None

    @property
    def waiting(self) -> int:
        return self._count + self._parked

    @property
    def parked(self) -> int:
        return self._parked

    def wait(self, request_id: int, agent_id: int, timeout: float) -> bool | Refusal:
        """Block until the request settles or turns to the agent (True) or `timeout` passes
        (False); a Refusal when
        the agent already holds its share of this process's waits, or the process its cap."""
        waiter = _Waiter(agent_id, time.monotonic() + timeout)
        with self._lock:
            refusal = self._refusal(agent_id, parked=False)
            if refusal:
                return refusal
            self._add(request_id, waiter)
        try:
            return waiter.event.wait(timeout)
        finally:
            with self._lock:
                self._remove(request_id, waiter)

    def wait_for_reversals(self, agent_id: int, after: int, timeout: float) -> bool | Refusal:
        """Block until one of the agent's requests is reversed with an id above `after` (True)
        or `timeout` passes (False); a thread wait, under the same caps as `wait`."""
        waiter = _Waiter(agent_id, time.monotonic() + timeout, feed=True, after=after)
        with self._lock:
            refusal = self._refusal(agent_id, parked=False)
            if refusal:
                return refusal
            self._add(agent_id, waiter)
        try:
            return waiter.event.wait(timeout)
        finally:
            with self._lock:
                self._remove(agent_id, waiter)

    def reserve(self, request_id: int, agent_id: int, timeout: float) -> str | Refusal:
        """Park a wait for the door to claim (`claim`): its ticket, or a Refusal when the agent
        already holds its share of this process's parked waits, or the process its cap. A
        decision that comes before the claim is kept: the claimed future is then done."""
        waiter = _Waiter(agent_id, time.monotonic() + timeout, parked=True)
        with self._lock:
            refusal = self._refusal(agent_id, parked=True)
            if refusal:
                return refusal
            ticket = secrets.token_urlsafe(12)
            self._tickets[ticket] = (request_id, waiter)
            self._add(request_id, waiter)
        return ticket

    def claim(
        self,
        ticket: str,
        loop: asyncio.AbstractEventLoop,
        on_decided: Callable[[], None] | None = None,
    ) -> asyncio.Future | None:
        """The future the watcher resolves (on `loop`) when the reserved request settles;
        None for a ticket this process does not hold (released, or dropped unclaimed).
        `on_decided` is called on `loop` once a decision is taken and waits out its undo window
        (the moment it becomes final is then known: the door renders its answer ahead)."""
        with self._lock:
            found = self._tickets.get(ticket)
            if found is None:
                return None
            waiter = found[1]
            waiter.loop, waiter.future = loop, loop.create_future()
            waiter.on_decided = on_decided
            if waiter.event.is_set():
                waiter.future.set_result(True)
            return waiter.future

    def release(self, ticket: str) -> None:
        """End a parked wait: its slot is free again."""
        with self._lock:
            found = self._tickets.pop(ticket, None)
            if found is not None:
                self._remove(*found)

    def _add(self, request_id: int, waiter: _Waiter) -> None:
        """Index a waiter (under the lock) and make sure this process's watcher runs;
        `request_id` is the agent's id for a feed's waiter."""
        (self._feeds if waiter.feed else self._waiters).setdefault(request_id, []).append(waiter)
        self._by_agent.setdefault(waiter.agent_id, []).append(waiter)
        if waiter.parked:
            self._parked += 1
        else:
            self._count += 1
        if self._thread is None or not self._thread.is_alive():
            # Started lazily, so each gunicorn worker gets its own after the fork.
            self._thread = threading.Thread(target=self._run, name="hitl-longpoll", daemon=True)
            self._thread.start()
        self._lock.notify()

    def _remove(self, request_id: int, waiter: _Waiter) -> None:
        waiters_of = self._feeds if waiter.feed else self._waiters
        for index, key in ((waiters_of, request_id), (self._by_agent, waiter.agent_id)):
            waiters = index[key]
            waiters.remove(waiter)
            if not waiters:
                del index[key]
        if waiter.parked:
            self._parked -= 1
        else:
            self._count -= 1

    def _refusal(self, agent_id: int, parked: bool) -> Refusal | None:
        """The limit a new wait of this agent would break, if any (called under the lock). The
        agent's own share is checked first: that is the limit it can do something about."""
        mine = [waiter for waiter in self._by_agent.get(agent_id, []) if waiter.parked == parked]
        if parked:
            name = "HITL_API_MAX_PARKED_WAITS"
            cap = settings.HITL_API_MAX_PARKED_WAITS
            share, held, share_name = max(cap // 4, 1), self._parked, f"a quarter of {name}"
        else:
            name, share_name = "HITL_API_MAX_WAITERS", "HITL_API_MAX_WAITERS_PER_AGENT"
            cap = settings.HITL_API_MAX_WAITERS
            share, held = settings.HITL_API_MAX_WAITERS_PER_AGENT, self._count
        if len(mine) >= share:
            return Refusal("agent", share, _seconds_until_first_end(mine), share_name)
        if held >= cap:
            everyone = [
                waiter
                for waiters in self._by_agent.values()
                for waiter in waiters
                if waiter.parked == parked
            ]
            return Refusal("server", cap, _seconds_until_first_end(everyone), name)
        return None

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiters and not self._feeds:
                    self._lock.wait()
                # Only the requests someone still waits on: a woken wait may take a moment to
                # answer and go, and looking its request up again on every look until then
                # would make each look as slow as the answers are many.
                ids = [
                    request_id
                    for request_id, waiters in self._waiters.items()
                    if not all(waiter.event.is_set() for waiter in waiters)
                ]
                feeds = {
                    agent_id: min(waiter.after for waiter in waiters)
                    for agent_id, waiters in self._feeds.items()
                }
            reversed_up_to: dict[int, int] = {}
            try:
                done, soon = look(ids) if ids else (set(), set())
                if feeds:
                    reversed_up_to = last_reversals(feeds)
            except Exception as exc:  # a database hiccup must not kill the watcher
                if database_unreachable(exc) or pool_exhausted(exc):
                    # A restart: one line per look, not a traceback; waiters time out, and
                    # those still waiting once it is back hear their decision.
                    log.warning("long-poll watcher cannot reach the database: %s", exc)
                else:
                    log.exception("long-poll watcher query failed")
                done, soon = set(), set()
            # Hand the connection back between looks: on PostgreSQL it returns to the process's
            # pool, where request threads use it between looks.
            connections.close_all()
            with self._lock:
                woken: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = defaultdict(list)
                told: dict[asyncio.AbstractEventLoop, list[Callable]] = defaultdict(list)
                for request_id in soon:
                    for waiter in self._waiters.get(request_id, []):
                        if waiter.on_decided is not None and not waiter.told:
                            waiter.told = True
                            told[waiter.loop].append(waiter.on_decided)
                for request_id in done:
                    for waiter in self._waiters.get(request_id, []):
                        if waiter.event.is_set():
                            continue
                        waiter.event.set()
                        if waiter.future is not None:
                            woken[waiter.loop].append(waiter.future)
                for agent_id, last in reversed_up_to.items():
                    for waiter in self._feeds.get(agent_id, []):
                        if waiter.after < last:
                            waiter.event.set()
                self._drop_unclaimed()
            # One callback per event loop for all its waiters: they wake in one turn of the
            # loop, so the door renders their answers together.
            for loop, futures in woken.items():
                with contextlib.suppress(RuntimeError):  # that loop has closed
                    loop.call_soon_threadsafe(_resolve, futures)
            for loop, calls in told.items():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_call_each, calls)
            time.sleep(self.interval)

    def _drop_unclaimed(self) -> None:
        """Forget parked reservations never claimed, well after their timeout (under the lock)."""
        late = time.monotonic() - UNCLAIMED_GRACE
        for ticket, (request_id, waiter) in list(self._tickets.items()):
            if waiter.future is None and waiter.ends_at < late:
                del self._tickets[ticket]
                self._remove(request_id, waiter)


def _call_each(calls: list[Callable[[], None]]) -> None:
    for call in calls:
        call()


def _resolve(futures: list[asyncio.Future]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(True)


def _seconds_until_first_end(waiters: list[_Waiter]) -> int:
    """Whole seconds until the first of these waits times out (so frees its slot), at least 1:
    a decision may free one sooner, but no later than that."""
    if not waiters:
        return 1
    first = min(waiter.ends_at for waiter in waiters)
    return max(math.ceil(first - time.monotonic()), 1)


watcher = Watcher()
