"""Telling a database that cannot be reached (restarting, failing over) or an exhausted
connection pool from a real error, as Django raises them: its own OperationalError and
InterfaceError wrapping psycopg's and psycopg_pool's."""

from __future__ import annotations

import psycopg
from django.db import InterfaceError, OperationalError, connection
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
