"""The Python client and @requires_approval against a live test server."""

import asyncio
import threading
import time

import pytest
from django.db import connection

from hitl_client import ApprovalTimeout, AsyncClient, Client, HITLError, Rejected, requires_approval
from reviews.longpoll import watcher
from reviews.models import ReviewRequest
from reviews.services.decisions import decide_request

from .api_support import AgentClient, _no_rate_limit
from .conftest import run_coroutine, wait_for

__all__ = ["_no_rate_limit"]

pytestmark = pytest.mark.django_db(transaction=True)


# A reviewer decides in another thread while the client long-polls the live server: real
# concurrent writers. SQLite's in-memory test database locks whole tables across threads
# ("database table is locked"), so these run on PostgreSQL.
concurrent = pytest.mark.postgres


@pytest.fixture
def client(live_server, agent_token, settings):
    settings.HITL_UNDO_SECONDS = 0
    return Client(live_server.url, agent_token, retries=0)


def reviewer(decide):
    """Decide the next pending request from another thread, as a person would."""

    def run():
        try:
            request = wait_for(
                lambda: ReviewRequest.objects.filter(status="pending").first(), timeout=15
            )
            decide(request)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@concurrent
def test_submit_then_wait_returns_the_decision(client, refunds, alice):
    created = client.submit(
        "refunds", "Refund 120 EUR", confidence=0.4, proposed_action={"amount": 120}
    )
    assert created["status"] == "pending"
    thread = reviewer(lambda r: decide_request(r.pk, by=alice, outcome="approved"))
    outcome = client.wait(created["id"], timeout=20)
    thread.join()
    assert outcome["status"] == "approved"
    assert outcome["decision"]["decided_by"] == "alice"


def test_the_client_raises_with_the_servers_field_messages(client, refunds):
    with pytest.raises(HITLError) as error:
        client.submit("refunds", "Refund", confidence=3)
    assert error.value.status == 422
    assert "confidence" in error.value.fields


def test_the_client_reads_categories_guidelines_and_evaluates(client, refunds):
    assert [c["slug"] for c in client.categories()] == ["refunds"]
    assert client.guidelines("refunds")["category"] == "refunds"
    assert client.evaluate("refunds", 0.2, {"amount": 5})["needs_human"] is True


def test_the_client_asks_ahead_about_the_exact_submission_sync_and_async(
    client, async_client, refunds, alice
):
    proposal = {
        "recommendation": "Refund in full.",
        "proposed_action": {"action": "issue_refund", "args": {"order": 1042, "amount": 20}},
        "allowed_decisions": ["approve", "reject"],
    }
    attributes = {"customer_tier": "standard"}
    first = client.submit(
        "refunds", "Refund 20 EUR", confidence=0.95, attributes=attributes, **proposal
    )
    assert first["status"] == "pending"  # nothing alike was approved before
    decide_request(
        ReviewRequest.objects.get(public_id=first["id"]).pk, by=alice, outcome="approved"
    )

    async def ask_async():
        async with async_client:
            return await async_client.evaluate("refunds", 0.95, attributes, **proposal)

    for judged in (
        client.evaluate("refunds", 0.95, attributes, **proposal),
        run_coroutine(ask_async()),
    ):
        assert (judged["verdict"], judged["attributes"]["matching_precedents"]) == ("autonomous", 1)
    assert client.evaluate("refunds", 0.95, attributes)["verdict"] == "escalate"
    again = client.submit(
        "refunds", "Refund 20 EUR", confidence=0.95, attributes=attributes, **proposal
    )
    assert again["status"] == "auto_approved"


@concurrent
def test_the_decorator_runs_the_function_with_the_humans_modified_arguments(client, refunds, alice):
    calls = []

    @requires_approval(
        "refunds",
        client=client,
        timeout=20,
        describe=lambda order, amount, note: {"confidence": 0.3, "attributes": {"amount": amount}},
    )
    def refund(order: int, amount: int, note: str = "") -> str:
        calls.append((order, amount, note))
        return "refunded"

    def halve(request):
        assert request.proposed_action == {"order": 1042, "amount": 120, "note": ""}
        decide_request(
            request.pk,
            by=alice,
            outcome="modified",
            final_action={"order": 1042, "amount": 60, "note": ""},
        )

    thread = reviewer(halve)
    assert refund(1042, 120) == "refunded"
    thread.join()
    assert calls == [(1042, 60, "")]


@concurrent
def test_the_decorator_raises_rejected_with_the_reason(client, refunds, alice):
    @requires_approval("refunds", client=client, timeout=20, title="Refund everything")
    def refund_all(amount: int) -> None:
        raise AssertionError("must not run")

    thread = reviewer(
        lambda r: decide_request(r.pk, by=alice, outcome="rejected", reason="Far too much.")
    )
    with pytest.raises(Rejected) as rejected:
        refund_all(999999)
    thread.join()
    assert rejected.value.reason == "Far too much."


def test_the_decorator_runs_at_once_when_no_rule_fires(client, refunds):
    @requires_approval(
        "refunds",
        client=client,
        describe=lambda amount: {
            "confidence": 0.95,
            "attributes": {
                "amount": amount,
                "customer_tier": "standard",
                "no_matching_precedent": False,
            },
        },
    )
    def refund(amount: int) -> int:
        return amount

    assert refund(50) == 50
    assert ReviewRequest.objects.get().status == "auto_approved"


def test_the_decorator_gives_up_after_its_timeout_and_withdraws_the_request(client, refunds):
    @requires_approval("refunds", client=client, timeout=1)
    def refund(amount: int) -> None:
        raise AssertionError("must not run")

    with pytest.raises(ApprovalTimeout):
        refund(10)
    assert ReviewRequest.objects.get().status == "cancelled"


@concurrent
def test_a_wait_refused_a_slot_waits_out_retry_after_and_still_gets_the_decision(
    client, settings, agent_token, refunds, alice
):
    settings.HITL_API_MAX_WAITERS = 1
    first = client.submit("refunds", "Refund 10 EUR", confidence=0.4)
    second = client.submit("refunds", "Refund 20 EUR", confidence=0.4)
    first_pk, second_pk = (
        ReviewRequest.objects.get(public_id=created["id"]).pk for created in (first, second)
    )

    def another_loop_holds_the_only_slot():
        try:
            AgentClient(agent_token).get(f"/api/v1/requests/{first['id']}/wait?timeout=2")
        finally:
            connection.close()

    holder = threading.Thread(target=another_loop_holds_the_only_slot)
    holder.start()
    wait_for(lambda: watcher.waiting == 1, timeout=10, interval=0.02)
    reviewer = threading.Timer(0.5, lambda: decide_request(second_pk, by=alice, outcome="approved"))
    reviewer.start()
    started = time.monotonic()
    # The server answers 429 with Retry-After (about 2 s, when the holder's wait ends); the
    # client, which retries nothing else here (retries=0), asks again then instead of failing.
    outcome = client.wait(second["id"], timeout=20)
    holder.join()
    reviewer.join()
    assert outcome["status"] == "approved"
    assert 1 <= time.monotonic() - started < 5
    assert ReviewRequest.objects.get(pk=first_pk).status == "pending"


def human_interrupt(amount: int = 950) -> dict:
    return {
        "action_request": {"action": "issue_refund", "args": {"order": 8812, "amount": amount}},
        "config": {"allow_accept": True, "allow_edit": True, "allow_respond": True},
        "description": "The parcel was lost.",
    }


class LangGraphInterrupt:
    """LangGraph's `Interrupt`, as a driver reads it from `result["__interrupt__"]`."""

    def __init__(self, value, id):
        self.value, self.id = value, id


def test_it_sends_the_same_interrupt_twice_and_gets_one_request(client, refunds):
    first = client.interrupt("refunds", human_interrupt())
    again = client.interrupt("refunds", human_interrupt())
    assert again["id"] == first["id"]
    assert ReviewRequest.objects.count() == 1


def test_it_makes_a_request_for_each_different_interrupt(client, refunds):
    first = client.interrupt("refunds", human_interrupt(950))
    other = client.interrupt("refunds", human_interrupt(951))
    assert other["id"] != first["id"]
    assert ReviewRequest.objects.count() == 2


def test_it_keys_an_interrupt_by_its_own_id(client, refunds):
    first = client.interrupt("refunds", LangGraphInterrupt([human_interrupt()], id="abc123"))
    again = client.interrupt("refunds", {**human_interrupt(), "id": "abc123"})
    another = client.interrupt("refunds", LangGraphInterrupt(human_interrupt(), id="def456"))
    assert again["id"] == first["id"] != another["id"]
    assert ReviewRequest.objects.get(public_id=first["id"]).idempotency_key == "interrupt:abc123"


def test_an_explicit_key_wins_over_the_interrupts_own(client, refunds):
    first = client.interrupt("refunds", human_interrupt(), idempotency_key="run-7-step-3")
    derived = client.interrupt("refunds", human_interrupt())
    again = client.interrupt("refunds", human_interrupt(), idempotency_key="run-7-step-3")
    assert again["id"] == first["id"] != derived["id"]
    assert ReviewRequest.objects.get(public_id=first["id"]).idempotency_key == "run-7-step-3"


def test_a_repeat_whose_description_changed_is_refused(client, refunds):
    client.interrupt("refunds", human_interrupt())
    with pytest.raises(HITLError) as refused:
        client.interrupt("refunds", {**human_interrupt(), "description": "Another text."})
    assert (refused.value.status, refused.value.error) == (409, "idempotency_conflict")


@pytest.fixture
def async_client(live_server, agent_token, settings):
    settings.HITL_UNDO_SECONDS = 0
    return AsyncClient(live_server.url, agent_token, retries=0)


@concurrent
def test_an_async_agent_submits_then_waits_for_the_decision(async_client, refunds, alice):
    async def agent():
        async with async_client:
            created = await async_client.submit(
                "refunds", "Refund 120 EUR", confidence=0.4, proposed_action={"amount": 120}
            )
            assert created["status"] == "pending"
            return await async_client.wait(created["id"], timeout=20)

    thread = reviewer(lambda r: decide_request(r.pk, by=alice, outcome="approved"))
    outcome = run_coroutine(agent())
    thread.join()
    assert outcome["status"] == "approved"
    assert outcome["decision"]["decided_by"] == "alice"


@concurrent
def test_several_async_waits_each_get_their_decision(async_client, refunds, alice):
    amounts = [10, 20, 30, 40]

    async def agent():
        async with async_client:
            created = [
                await async_client.submit("refunds", f"Refund {amount} EUR", confidence=0.4)
                for amount in amounts
            ]
            return await asyncio.gather(
                *(async_client.wait(each["id"], timeout=20) for each in created)
            )

    def decide_them_all(_first):
        for amount in amounts:
            request = wait_for(
                lambda amount=amount: ReviewRequest.objects.filter(
                    title=f"Refund {amount} EUR", status="pending"
                ).first(),
                timeout=15,
            )
            outcome = "rejected" if amount == 30 else "approved"
            decide_request(request.pk, by=alice, outcome=outcome, reason="Too late.")

    thread = reviewer(decide_them_all)
    outcomes = run_coroutine(agent())
    thread.join()
    assert [(o["title"], o["status"]) for o in outcomes] == [
        ("Refund 10 EUR", "approved"),
        ("Refund 20 EUR", "approved"),
        ("Refund 30 EUR", "rejected"),
        ("Refund 40 EUR", "approved"),
    ]


def test_an_async_agent_sends_the_same_interrupt_once(async_client, refunds):
    async def agent():
        async with async_client:
            first = await async_client.interrupt("refunds", human_interrupt())
            return first, await async_client.interrupt("refunds", human_interrupt())

    first, again = run_coroutine(agent())
    assert again["id"] == first["id"]
    assert ReviewRequest.objects.count() == 1


def test_an_async_wait_gives_up_after_its_timeout(async_client, refunds):
    async def agent():
        async with async_client:
            created = await async_client.submit("refunds", "Refund 10 EUR", confidence=0.4)
            await async_client.wait(created["id"], timeout=1)

    with pytest.raises(ApprovalTimeout):
        run_coroutine(agent())
