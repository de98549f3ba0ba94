"""A person's inbox counts start over once they decide or take a decision back: the counts
reviews.worklist keeps for a while are filed under a generation of theirs, which this renews
when their transaction commits, so the next list they load counts what they just did."""

from __future__ import annotations

import secrets

from django.core.cache import cache
from django.db import transaction

# Longer than the counts are kept (worklist.COUNTS_CACHE_SECONDS): a generation that expires
# reads as "" again, under which nothing younger than a day was filed.
GENERATION_SECONDS = 24 * 3600


def _key(user_id: int) -> str:
    return f"inbox:generation:{user_id}"


def counts_generation(user_id: int) -> str:
    """The generation the user's cached counts are filed under ("" before their first
    decision, or while the cache is down)."""
    return cache.get(_key(user_id), "")


def recount_for(user_id: int) -> None:
    """File the user's counts under a new generation once the caller's transaction commits
    (before it, a list could count the old state and file it under the new one). A random
    value rather than a counter: no missing key to start, and two renewals never collide."""
    transaction.on_commit(
        lambda: cache.set(_key(user_id), secrets.token_hex(8), GENERATION_SECONDS)
    )
