"""Redis accelerates (cache, rate limits, the broker) but never decides whether a request works.

While Redis is unreachable, callers skip it for `HITL_REDIS_RETRY_SECONDS` at a time instead
of paying a connection attempt per request, and each process logs one warning per outage.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis import RedisError

log = logging.getLogger(__name__)


class Outage:
    """Whether one use of Redis (the cache, the broker) is down in this process."""

    def __init__(self, name: str, consequence: str) -> None:
        self.name = name
        self.consequence = consequence
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = 0.0

    @property
    def down(self) -> bool:
        return self._down

    def skipping(self) -> bool:
        """True while a recent failure says not to try yet."""
        return self._down and time.monotonic() < self._retry_at

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            first = not self._down
            self._down = True
            self._retry_at = time.monotonic() + settings.HITL_REDIS_RETRY_SECONDS
        if first:
            log.warning(
                "%s is unreachable (%s: %s); %s. Retrying every %s s.",
                self.name,
                type(exc).__name__,
                exc,
                self.consequence,
                settings.HITL_REDIS_RETRY_SECONDS,
            )

    def recovered(self) -> None:
        if not self._down:
            return
        with self._lock:
            back = self._down
            self._down = False
        if back:
            log.warning("%s is reachable again", self.name)


CACHE = Outage("the Redis cache", "rate limits are off and inbox counts are not cached")
BROKER = Outage("the Celery broker", "due work stays in PostgreSQL until it returns")


def _fail_open(fallback: Any) -> Any:
    """Wrap a cache client method: on a Redis error (or during an outage) return `fallback`,
    or the call's `default` argument when `fallback` is the string "default"."""

    def decorate(method: Any) -> Any:
        def wrapper(self: RedisCacheClient, *args: Any, **kwargs: Any) -> Any:
            value = kwargs.get("default", args[-1] if args else None)
            result = value if fallback == "default" else fallback
            if CACHE.skipping():
                return result
            try:
                answer = method(self, *args, **kwargs)
            except RedisError as exc:
                CACHE.failed(exc)
                return result
            CACHE.recovered()
            return answer

        wrapper.__name__ = method.__name__
        wrapper.__doc__ = method.__doc__
        return wrapper

    return decorate


COUNT_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class FailOpenRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # One client per connection pool, not a new one per call as Django builds them:
        # building a redis.Redis (its table of reply callbacks) cost more CPU than the
        # command it then sent. A client is safe to share between threads.
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients.setdefault(id(pool), self._client(connection_pool=pool))
        return client

    add = _fail_open(False)(RedisCacheClient.add)
    get = _fail_open("default")(RedisCacheClient.get)
    set = _fail_open(None)(RedisCacheClient.set)
    touch = _fail_open(False)(RedisCacheClient.touch)
    delete = _fail_open(False)(RedisCacheClient.delete)
    get_many = _fail_open({})(RedisCacheClient.get_many)
    has_key = _fail_open(False)(RedisCacheClient.has_key)
    set_many = _fail_open([])(RedisCacheClient.set_many)
    delete_many = _fail_open(None)(RedisCacheClient.delete_many)
    clear = _fail_open(False)(RedisCacheClient.clear)

    # A counter reads as freshly started (the delta) while Redis is down: rate limits fail open.
    incr = _fail_open("default")(RedisCacheClient.incr)

    @_fail_open(1)
    def count_hit(self, key: str, timeout: int) -> int:
        """Add one to the counter at `key`, which expires `timeout` seconds after its first
        hit: one round trip (the script runs whole on the server). Counts 1 while Redis is
        down: rate limits fail open."""
        return self.get_client(key, write=True).eval(COUNT_HIT_SCRIPT, 1, key, timeout)

    def ping(self) -> bool:
        """Ask Redis directly (for /health/), whatever the outage flag says."""
        try:
            self.get_client(write=True).ping()
        except RedisError as exc:
            CACHE.failed(exc)
            return False
        CACHE.recovered()
        return True


class FailOpenRedisCache(RedisCache):
    """Django's Redis cache, except that Redis being down reads as a miss, never an error."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = FailOpenRedisCacheClient

    def ping(self) -> bool:
        return self._cache.ping()

    def count_hit(self, key: str, timeout: int) -> int:
        return self._cache.count_hit(self.make_and_validate_key(key), timeout)


def count_hit(key: str, timeout: int) -> int:
    """One more hit on a counter that starts at the first hit and expires `timeout` seconds
    later (a fixed window's count): one atomic round trip on Redis, add-then-incr on another
    cache (per-process memory when there is no REDIS_URL)."""
    cache = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(cache, FailOpenRedisCache):
        return cache.count_hit(key, timeout)
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
        return 1
