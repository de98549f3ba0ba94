"""Transactions that PostgreSQL aborts to break a lock cycle are run again.

The tally triggers (reviews.tallies) lock shared tally rows in one order within a statement,
but a transaction of several statements (an interrupt's requests, the timeout sweep's batch,
a reassignment) holds the rows of its earlier statements while it waits for others, so it
can close a cycle with a concurrent writer. PostgreSQL then aborts one of them with
deadlock_detected; a serialization failure is the same kind of refusal. Neither wrote
anything, and every service retried here reads its state afresh (a decision claims only a
request still pending; a submission with an Idempotency-Key finds the one already recorded),
so running it again is safe, and the caller sees the write done instead of an error.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import OperationalError, connection

from .. import rulebook

P = ParamSpec("P")
T = TypeVar("T")

# deadlock_detected, serialization_failure
TRANSIENT = frozenset({"40P01", "40001"})
ATTEMPTS = 3


def is_transient(error: BaseException) -> bool:
    """Whether the database refused the transaction only for what ran beside it."""
    cause = error.__cause__
    return getattr(cause, "sqlstate", None) in TRANSIENT


def retried(service: Callable[P, T]) -> Callable[P, T]:
    """Run `service` again, up to ATTEMPTS times in all, when the database aborts its
    transaction as a deadlock's victim. Only where it is the outermost transaction: inside
    a caller's atomic block the whole of the caller's work is lost, so the caller retries."""

    @functools.wraps(service)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        if connection.in_atomic_block:
            return service(*args, **kwargs)
        attempt = 1
        while True:
            try:
                return service(*args, **kwargs)
            except OperationalError as error:
                if attempt == ATTEMPTS or not is_transient(error):
                    raise
            attempt += 1
            # A rolled-back attempt may have cached rows it wrote (a category's first policy
            # version); a short random pause lets the other side of the cycle finish first.
            rulebook.forget_all()
            time.sleep(random.uniform(0.01, 0.05) * attempt)

    return run
