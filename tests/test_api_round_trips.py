"""What one agent submission costs in round trips, counted on the real servers: PostgreSQL's
protocol (libpq's trace: BEGIN, COMMIT and savepoints count) and the commands Redis receives
(MONITOR). docs/benchmarks.md ("Agent API submissions") relies on these numbers."""

from __future__ import annotations

import os
import uuid

import pytest

from bench.common import postgres_round_trips, redis_commands

from .api_support import ROUTINE_SUBMISSION, AgentClient, api, escalated

__all__ = ["api"]

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def own_cache_prefix(settings) -> str:
    """The Redis cache under a prefix of this test's own, so MONITOR can tell its commands."""
    prefix = f"trips-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": prefix}}
    settings.HITL_API_RATE_LIMIT = 1000
    return prefix


def submit(api: AgentClient, body: dict) -> dict:
    response = api.post_json("/api/v1/requests", body, HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)
    assert response.status_code == 201, response.content
    return response.json()


# transactional_db: no test transaction around the request, as in production, so what the
# submission itself opens (or does not) is what is counted.
@pytest.mark.parametrize(
    ("body", "status", "postgres"),
    [(escalated(), "pending", 5), (ROUTINE_SUBMISSION, "auto_approved", 4)],
    ids=["escalated", "auto-approved"],
)
def test_a_submission_is_a_few_statements_and_one_redis_command(
    transactional_db, api, refunds, own_cache_prefix, body, status, postgres
):
    # The first calls also note the token's use, record the category's first policy version
    # and load the rules into this process.
    submit(api, body)
    submit(api, body)
    with (
        redis_commands(os.environ["REDIS_URL"], own_cache_prefix) as commands,
        postgres_round_trips() as trips,
    ):
        created = submit(api, {**body, "title": "Second"})
    assert created["status"] == status
    # The token, the category, the precedents, (for a human) the least-loaded reviewer, and
    # one statement writing the request, its audit events and any decision: no BEGIN/COMMIT.
    assert trips.n == postgres
    # The rate limiter's count, one script run whole on the server.
    assert [c.split()[0].strip('"').upper() for c in commands] == ["EVAL"]


def test_the_rate_window_expires_two_windows_after_its_first_call(
    transactional_db, api, refunds, own_cache_prefix
):
    import redis

    submit(api, escalated())
    server = redis.Redis.from_url(os.environ["REDIS_URL"])
    (key,) = server.keys(f"{own_cache_prefix}:*api-rate:*")
    assert server.get(key) == b"1"
    assert 100 < server.ttl(key) <= 120
    submit(api, escalated())
    assert server.get(key) == b"2" and server.ttl(key) <= 120
