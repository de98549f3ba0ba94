"""Long-poll waits that cost a thread but no database connection per waiting agent.

One watcher thread per web process looks up every waited-on request in a single query a few
times a second and wakes the waiters whose request has settled: decided and past the undo
window, cancelled, or auto-approved. A waiter blocks on an Event, holding no connection, so
100 waiting agents cost 100 idle threads and one query every WATCH_INTERVAL, not 100
connections polling. `HITL_API_MAX_WAITERS` caps the waiters of one process below its thread
count, so waits can never take the threads that serve everything else.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import connection, connections
from django.db.models import Q
from django.utils import timezone

from .models import ReviewRequest

log = logging.getLogger(__name__)

# How often the watcher looks; the agent hears of a decision at most this long after it
# becomes effective (plus one query).
WATCH_INTERVAL = 0.25


def settled(ids: list[int]) -> set[int]:
    """The requests an agent may now learn the outcome of."""
    now = timezone.now()
    return set(
        ReviewRequest.objects.filter(pk__in=ids)
        .exclude(status=ReviewRequest.Status.PENDING)
        .filter(Q(decision__isnull=True) | Q(decision__effective_at__lte=now))
        .values_list("pk", flat=True)
    )


def release_connection() -> None:
    """Give this thread's database connection back while it blocks (not inside a transaction,
    as in tests that wrap each test in one)."""
    if not connection.in_atomic_block:
        connection.close()


class Watcher:
    def __init__(self, interval: float = WATCH_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Condition()
        self._waiters: dict[int, list[threading.Event]] = {}
        self._count = 0
        self._thread: threading.Thread | None = None

    @property
    def waiting(self) -> int:
        return self._count

    def wait(self, request_id: int, timeout: float) -> bool | None:
        """Block until the request settles (True) or `timeout` passes (False); None when this
        process already serves HITL_API_MAX_WAITERS waits."""
        event = threading.Event()
        with self._lock:
            if self._count >= settings.HITL_API_MAX_WAITERS:
                return None
            self._waiters.setdefault(request_id, []).append(event)
            self._count += 1
            if self._thread is None or not self._thread.is_alive():
                # Started lazily, so each gunicorn worker gets its own after the fork.
                self._thread = threading.Thread(target=self._run, name="hitl-longpoll", daemon=True)
                self._thread.start()
            self._lock.notify()
        try:
            return event.wait(timeout)
        finally:
            with self._lock:
                events = self._waiters.get(request_id, [])
                if event in events:
                    events.remove(event)
                if not events:
                    self._waiters.pop(request_id, None)
                self._count -= 1

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._waiters:
                    connections.close_all()  # idle: hold no connection
                    while not self._waiters:
                        self._lock.wait()
                ids = list(self._waiters)
            try:
                done = settled(ids)
            except Exception:  # a database hiccup must not kill the watcher; waiters time out
                log.exception("long-poll watcher query failed")
                connections.close_all()
                done = set()
            with self._lock:
                for request_id in done:
                    for event in self._waiters.get(request_id, []):
                        event.set()
            time.sleep(self.interval)


watcher = Watcher()
