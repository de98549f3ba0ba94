"""The Python client when the real server says "busy" (429): an agent over its rate limit, or a
wait with no long-poll slot free. The agent waits it out and hears its decision: busy is never
an error to it. A wrong call (a bad token, bad input) is still raised at once."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest
from django.db import connection

from hitl_client import Client, HITLError, Unavailable, requires_approval
from reviews.models import ReviewRequest
from reviews.services.decisions import decide_request

from .api_support import AgentClient
from .conftest import run_coroutine

pytestmark = pytest.mark.django_db(transaction=True)

# A reviewer decides in another thread while the client long-polls the live server; SQLite's
# in-memory test database locks whole tables across threads, so these run on PostgreSQL.
concurrent = pytest.mark.postgres

WINDOW = 3  # seconds: HITL_API_RATE_WINDOW_SECONDS, short so a test waits a window out quickly


@pytest.fixture
def busy_log(caplog):
    """The client's "busy" warnings, as an operator reads them."""
    caplog.set_level(logging.WARNING, logger="hitl_client")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "busy" in r.getMessage()]

    return lines


@pytest.fixture
def rate_limited(settings):
    """One request per WINDOW seconds per agent, counted in the configured cache (Redis when
    REDIS_URL is set) under a prefix of this test's own, so other tests' counts stay out."""
    settings.HITL_UNDO_SECONDS = 0
    settings.HITL_API_RATE_LIMIT = 1
    settings.HITL_API_RATE_WINDOW_SECONDS = WINDOW
    fresh = f"rate-{uuid.uuid4()}"
    cache = {**settings.CACHES["default"], "KEY_PREFIX": fresh}
    if cache["BACKEND"].endswith("LocMemCache"):
        cache["LOCATION"] = fresh
    settings.CACHES = {"default": cache}


def use_up_the_window(agent_token: str) -> None:
    """Spend this window's one request, early enough in it that the next call is refused."""
    while time.time() % WINDOW > WINDOW - 1.5:
        time.sleep(0.1)
    agent = AgentClient(agent_token)
    assert [agent.get("/api/v1/categories").status_code for _ in range(2)] == [200, 429]


def test_a_submission_over_the_rate_limit_waits_for_the_next_window_and_is_stored_once(
    live_server, agent_token, refunds, rate_limited, busy_log
):
    client = Client(live_server.url, agent_token, retries=0)  # no retries: a 429 is not one
    use_up_the_window(agent_token)
    created = client.submit("refunds", "Refund 120 EUR", confidence=0.4)
    assert created["status"] == "pending"
    assert str(ReviewRequest.objects.get().public_id) == created["id"]  # one request, not two
    assert len(busy_log()) == 1 and "rate_limited" in busy_log()[0]


def test_a_plain_call_busy_past_its_unavailable_timeout_raises_unavailable(
    live_server, agent_token, refunds, rate_limited
):
    client = Client(live_server.url, agent_token, retries=0, unavailable_timeout=0.5)
    use_up_the_window(agent_token)
    with pytest.raises(Unavailable) as refused:
        client.categories()
    assert (refused.value.status, refused.value.error) == (429, "rate_limited")


@pytest.fixture
def no_wait_slot(settings):
    """The live server refuses every long-poll (429, Retry-After: 1) until `free()`."""
    settings.HITL_UNDO_SECONDS = 0
    settings.HITL_API_RATE_LIMIT = 0
    settings.HITL_API_MAX_WAITERS = 0

    def free() -> None:
        settings.HITL_API_MAX_WAITERS = 8

    return free


def free_then_approve(free, reviewer, after: float = 2.5) -> threading.Thread:
    """After `after` seconds of refused waits, free the slots; a second later, approve the
    pending request, as a reviewer would."""

    def run() -> None:
        try:
            time.sleep(after)
            free()
            time.sleep(1)
            request = ReviewRequest.objects.get(status="pending")
            decide_request(request.pk, by=reviewer, outcome="approved")
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@concurrent
def test_a_wait_with_no_slot_free_keeps_waiting_and_returns_the_decision(
    live_server, agent_token, refunds, alice, no_wait_slot, busy_log
):
    client = Client(live_server.url, agent_token, retries=0)
    created = client.submit("refunds", "Refund 120 EUR", confidence=0.4)
    reviewer = free_then_approve(no_wait_slot, alice)
    started = time.monotonic()
    outcome = client.wait(created["id"], timeout=30)
    reviewer.join()
    assert outcome["status"] == "approved"
    assert time.monotonic() - started >= 2.5  # it was refused until the slots were freed
    # Refused every second or so for 2.5 s: one line for the whole spell.
    assert len(busy_log()) == 1 and "too_many_waiters" in busy_log()[0]


@concurrent
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_decorated_function_runs_with_the_approval_after_refused_waits(
    kind, live_server, agent_token, refunds, alice, no_wait_slot, busy_log
):
    client = Client(live_server.url, agent_token, retries=0)
    ran = []
    if kind == "sync":

        @requires_approval("refunds", client=client, timeout=30)
        def refund(order: int) -> str:
            ran.append(order)
            return "refunded"

    else:

        @requires_approval("refunds", client=client, timeout=30)
        async def refund(order: int) -> str:
            ran.append(order)
            return "refunded"

    reviewer = free_then_approve(no_wait_slot, alice)
    result = refund(1042) if kind == "sync" else run_coroutine(refund(1042))
    reviewer.join()
    assert (result, ran) == ("refunded", [1042])
    assert ReviewRequest.objects.get().status == "approved"
    assert len(busy_log()) == 1 and "too_many_waiters" in busy_log()[0]


def test_a_bad_token_is_raised_at_once_not_waited_out(live_server, refunds):
    client = Client(live_server.url, "hitl_not_a_token", unavailable_timeout=300)
    started = time.monotonic()
    with pytest.raises(HITLError) as refused:
        client.submit("refunds", "Refund 120 EUR", confidence=0.4)
    assert refused.value.status == 401 and not isinstance(refused.value, Unavailable)
    assert time.monotonic() - started < 5  # one answer, not minutes of retries
    assert not ReviewRequest.objects.exists()


def test_bad_input_is_raised_at_once_even_while_waits_are_refused(
    live_server, agent_token, refunds, no_wait_slot
):
    client = Client(live_server.url, agent_token, unavailable_timeout=300)
    started = time.monotonic()
    with pytest.raises(HITLError) as refused:
        client.submit("refunds", "Refund 120 EUR", confidence=3)
    assert refused.value.status == 422 and "confidence" in refused.value.fields
    with pytest.raises(HITLError) as missing:
        client.wait(str(uuid.uuid4()), timeout=30)
    assert missing.value.status == 404
    assert time.monotonic() - started < 5
    assert not ReviewRequest.objects.exists()
