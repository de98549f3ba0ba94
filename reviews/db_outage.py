"""Telling a database that cannot be reached (restarting, failing over) or an exhausted
connection pool from a real error, as Django raises them: its own OperationalError and
InterfaceError wrapping psycopg's and psycopg_pool's."""

from __future__ import annotations

import threading
import time

import psycopg
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from psycopg_pool import PoolClosed, PoolTimeout

# Connection-level SQLSTATEs: class 08 (connection exception) and the server shutting down or
# still starting (57P01-57P03). Other OperationalErrors (a deadlock, a cancelled statement) are
# real errors of one request and stay 500s.
UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def pool_exhausted(exc: BaseException) -> bool:
    """True when the database connection pool had no connection to give within its timeout."""
    return isinstance(exc, OperationalError) and isinstance(exc.__cause__, PoolTimeout)


def database_unreachable(exc: BaseException) -> bool:
    """True when the error says the database cannot be talked to (refused, closed, shutting
    down), as Django raises it (its own OperationalError/InterfaceError wrapping psycopg's)."""
    if isinstance(exc, InterfaceError):
        return True  # the connection is closed or unusable: never the request's fault
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    if isinstance(cause, (PoolTimeout, PoolClosed, psycopg.InterfaceError)):
        return True
    if isinstance(cause, psycopg.OperationalError):
        sqlstate = cause.sqlstate or ""
        return not sqlstate or sqlstate.startswith(UNREACHABLE_SQLSTATES)
    return False


def pool_cannot_connect() -> bool:
    """After a pool timeout: True when the pool was still allowed to open connections, so the
    wait was for one the database would not give (it is down), not for a busy pool's."""
    pool = getattr(connection, "pool", None)
    return pool is None or pool.get_stats().get("pool_size", 0) < pool.max_size


class DatabaseOutage:
    """What this process knows of the database between requests. Once a request found it
    unreachable, later ones are not sent to wait the pool's whole timeout for a connection
    that cannot come: a probe (a short wait for a connection, at most one a second) decides,
    and while it fails they are answered 503 at once."""

    PROBE_EVERY_SECONDS = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down = False
        self._probed_at = 0.0

    def failed(self) -> bool:
        """Note a request that found it unreachable; True for the first of an outage."""
        with self._lock:
            first = not self._down
            if first:
                self._down, self._probed_at = True, time.monotonic()
        return first

    def still_down(self) -> bool:
        """False when the database is thought up, or a probe now reaches it."""
        if not self._down:
            return False
        with self._lock:
            if time.monotonic() - self._probed_at < self.PROBE_EVERY_SECONDS:
                return True
            self._probed_at = time.monotonic()
        from .health import probe_database  # health reads models; this module must not

        try:
            probe_database()
        except DatabaseError:
            return True
        self._down = False
        return False


OUTAGE = DatabaseOutage()
