"""The shared cache fails open: with its Redis unreachable, a read is a miss, a write is
dropped, a rate-limit counter starts afresh, and the process logs one warning, not one per call.
No Redis server is needed: the cache points at a port where nothing listens."""

from __future__ import annotations

import logging
import time

import pytest
from django.core.cache import cache

from hitl.redis_outage import count_hit

from .timeouts_support import free_port


@pytest.fixture
def dead_redis_cache(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "hitl.redis_outage.FailOpenRedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    settings.HITL_REDIS_RETRY_SECONDS = 60
    from hitl.redis_outage import CACHE

    yield cache
    CACHE.recovered()


@pytest.mark.wall_clock
def test_it_reads_as_a_miss_and_warns_once(dead_redis_cache, caplog):
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="hitl.redis_outage"):
        for _ in range(50):
            assert dead_redis_cache.get("k") is None
            assert dead_redis_cache.get("k", "fallback") == "fallback"
            dead_redis_cache.set("k", 1, 5)
            assert dead_redis_cache.add("n", 0, 5) is False
            assert dead_redis_cache.incr("n") == 1  # counts nothing: no rate limit
            assert count_hit("n", 5) == 1  # the rate limiter's count: the same
            assert dead_redis_cache.get_many(["a", "b"]) == {}
    assert time.monotonic() - started < 2  # after the first failure, Redis is not even asked
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert "the Redis cache" in warnings[0].getMessage()


def test_health_names_the_cache_while_its_redis_is_unreachable(dead_redis_cache, client, db):
    body = client.get("/health/").json()
    assert body["checks"]["cache"]["ok"] is False
    assert "cache" in body["failing"]
