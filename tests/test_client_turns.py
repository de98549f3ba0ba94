"""An agent blocked in a wait hears a reviewer's question at once, answers it (or revises its
proposal) and goes on waiting: Client.wait, AsyncClient.wait, requires_approval and ask,
against a live test server."""

import threading
import time

import pytest
from django.db import connection

from hitl_client import (
    ApprovalTimeout,
    AsyncClient,
    Client,
    Reply,
    ReviewerAsked,
    requires_approval,
)
from reviews.models import Message, ReviewRequest
from reviews.services.conversation import post_message
from reviews.services.decisions import decide_request

from .api_support import _no_rate_limit
from .conftest import run_coroutine, wait_for
from .turns_support import QUESTION, reviewer_asks

__all__ = ["_no_rate_limit"]

# Concurrent writers (the reviewer's thread, the live server's): PostgreSQL, as test_api_client.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

REFUND = {"confidence": 0.4, "proposed_action": {"order": 1042, "amount": 120}}


@pytest.fixture
def client(live_server, agent_token, settings):
    settings.HITL_UNDO_SECONDS = 0
    return Client(live_server.url, agent_token, retries=0)


def test_a_wait_answers_the_reviewers_question_and_goes_on_to_the_decision(client, refunds, alice):
    created = client.submit("refunds", "Refund 120 EUR", **REFUND)
    heard = []

    def on_message(message, request):
        heard.append((message["kind"], message["body"], message["author_name"], request["id"]))
        return "Yes, two photos of the broken lid."

    thread, seen = reviewer_asks(alice)
    outcome = client.wait(created["id"], timeout=30, on_message=on_message)
    thread.join()
    assert seen.error is None
    assert heard == [("question", QUESTION, "alice", created["id"])]
    assert outcome["status"] == "approved" and outcome["rounds"] == 1
    answer = Message.objects.get(request__public_id=created["id"], kind="answer")
    assert answer.body == "Yes, two photos of the broken lid."


def test_a_revision_is_the_version_the_reviewer_approves(client, refunds, alice):
    created = client.submit("refunds", "Refund 120 EUR", **REFUND)

    def on_message(message, request):
        return Reply("No photos: half, then.", {**request["proposed_action"], "amount": 60})

    thread, seen = reviewer_asks(alice)
    outcome = client.wait(created["id"], timeout=30, on_message=on_message)
    thread.join()
    assert seen.answered.proposal_version == 2
    assert outcome["status"] == "approved"
    assert outcome["proposed_action"] == {"order": 1042, "amount": 60}
    assert outcome["decision"]["proposal_version"] == 2
    revision = Message.objects.get(request__public_id=created["id"], kind="revision")
    assert revision.body == "No photos: half, then."


def test_a_wait_without_a_handler_raises_reviewer_asked_and_can_answer_then_wait_again(
    client, refunds, alice
):
    created = client.submit("refunds", "Refund 120 EUR", **REFUND)
    thread, seen = reviewer_asks(alice)
    with pytest.raises(ReviewerAsked) as asked:
        client.wait(created["id"], timeout=30)
    assert asked.value.request_id == created["id"]
    assert asked.value.message["body"] == QUESTION
    assert asked.value.request["turn"] == "agent"

    client.answer(created["id"], "Yes.")
    outcome = client.wait(created["id"], timeout=30)
    thread.join()
    assert seen.error is None and outcome["status"] == "approved"


def test_an_async_wait_takes_a_coroutine_handler(
    live_server, agent_token, settings, refunds, alice
):
    settings.HITL_UNDO_SECONDS = 0

    async def on_message(message, request):
        return {**request["proposed_action"], "amount": 80}

    async def agent():
        async with AsyncClient(live_server.url, agent_token, retries=0) as api:
            created = await api.submit("refunds", "Refund 120 EUR", **REFUND)
            return await api.wait(created["id"], timeout=30, on_message=on_message)

    thread, seen = reviewer_asks(alice)
    outcome = run_coroutine(agent())
    thread.join()
    assert seen.error is None
    assert outcome["status"] == "approved"
    assert outcome["proposed_action"]["amount"] == 80


def test_the_decorated_function_runs_with_the_revised_action_the_reviewer_approved(
    client, refunds, alice
):
    calls = []

    def lower(message, request):
        return Reply("No photos yet.", {**request["proposed_action"], "amount": 60})

    @requires_approval("refunds", client=client, timeout=30, on_message=lower)
    def refund(order: int, amount: int) -> str:
        calls.append((order, amount))
        return "refunded"

    thread, seen = reviewer_asks(alice)
    assert refund(1042, 120) == "refunded"
    thread.join()
    assert seen.error is None
    assert calls == [(1042, 60)]


def test_the_reviewers_changes_to_a_revision_win_over_it(client, refunds, alice):
    calls = []

    @requires_approval(
        "refunds",
        client=client,
        timeout=30,
        on_message=lambda message, request: {**request["proposed_action"], "amount": 60},
    )
    def refund(order: int, amount: int, note: str = "") -> None:
        calls.append((order, amount, note))

    def modify(request):
        decide_request(
            request.pk,
            by=alice,
            outcome="modified",
            final_action={"order": 1042, "amount": 60, "note": "photos on file"},
            version=request.proposal_version,
        )

    thread, seen = reviewer_asks(alice, modify)
    refund(1042, 120)
    thread.join()
    assert seen.error is None
    assert calls == [(1042, 60, "photos on file")]


def test_a_decorated_call_without_a_handler_raises_reviewer_asked(client, refunds, alice):
    @requires_approval("refunds", client=client, timeout=30)
    def refund(order: int, amount: int) -> None:
        raise AssertionError("must not run")

    thread, _seen = reviewer_asks(alice, lambda request: None)
    with pytest.raises(ReviewerAsked):
        refund(1042, 120)
    client.answer(ReviewRequest.objects.get().public_id, "Never mind.")
    thread.join()


def respond(reviewer, answer: str, option: str = "") -> threading.Thread:
    """A reviewer answers the next question in another thread (picking `option`, if any)."""

    def run():
        try:
            request = wait_for(lambda: ReviewRequest.objects.filter(status="pending").first())
            decide_request(
                request.pk,
                by=reviewer,
                outcome="rejected",
                reason=answer,
                responded=True,
                chosen_option=option,
            )
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_ask_returns_the_reviewers_answer(client, refunds, alice):
    thread = respond(alice, "The new one, 12 Rue Oberkampf.")
    answer = client.ask(
        "Which address should the replacement go to?",
        category="refunds",
        context="The customer moved last week.",
        default="The address on the order.",
        timeout=30,
    )
    thread.join()
    assert answer == "The new one, 12 Rue Oberkampf."
    question = ReviewRequest.objects.get()
    assert question.allowed_decisions == ["respond"]
    assert question.default_answer == "The address on the order."
    assert question.situation == "The customer moved last week."


def test_ask_with_choices_returns_the_chosen_key(client, refunds, alice):
    thread = respond(alice, "Ship it to the new one.", option="new")
    answer = client.ask(
        "Which address?",
        category="refunds",
        choices={"old": "The address on the order", "new": "The new address"},
        timeout=30,
    )
    thread.join()
    assert answer == "new"
    assert ReviewRequest.objects.get().options == [
        {"key": "old", "label": "The address on the order"},
        {"key": "new", "label": "The new address"},
    ]


def test_ask_withdraws_the_question_after_its_timeout(client, refunds):
    started = time.monotonic()
    with pytest.raises(ApprovalTimeout):
        client.ask("Which address?", category="refunds", timeout=1)
    assert time.monotonic() - started < 20
    assert ReviewRequest.objects.get().status == "cancelled"


def test_an_async_ask_returns_the_answer(live_server, agent_token, settings, refunds, alice):
    settings.HITL_UNDO_SECONDS = 0

    async def agent():
        async with AsyncClient(live_server.url, agent_token, retries=0) as api:
            return await api.ask("Which address?", category="refunds", choices=["old", "new"])

    thread = respond(alice, "old one", "old")
    assert run_coroutine(agent()) == "old"
    thread.join()


def test_a_blocked_wait_hears_the_question_within_a_second(client, refunds, alice):
    """Timed against the real server: the client sits in its long-poll (up to 60 s) when the
    question is posted 2 s in; the handler must run within 1 s of the post."""
    created = client.submit("refunds", "Refund 120 EUR", **REFUND)
    handled_at = []

    def on_message(message, request):
        handled_at.append(time.monotonic())
        return "Yes."

    thread, seen = reviewer_asks(alice, pause=2.0)
    client.wait(created["id"], timeout=60, on_message=on_message)
    thread.join()
    assert seen.error is None and len(handled_at) == 1
    assert 0 <= handled_at[0] - seen.asked_at < 1.0


def test_a_long_quiet_wait_stays_one_held_request_and_hears_a_late_question_at_once(
    client, refunds, alice, caplog
):
    """The server holds a long-poll up to 60 s: the client must not give up on the connection
    after 15 s (taking the quiet for an outage and backing off), so a question posted 18 s in
    still reaches the handler within a second."""
    created = client.submit("refunds", "Refund 120 EUR", **REFUND)
    handled_at = []

    def on_message(message, request):
        handled_at.append(time.monotonic())
        return "Yes."

    thread, seen = reviewer_asks(alice, pause=18.0)
    with caplog.at_level("WARNING", logger="hitl_client"):
        client.wait(created["id"], timeout=40, on_message=on_message)
    thread.join()
    assert seen.error is None and len(handled_at) == 1
    assert 0 <= handled_at[0] - seen.asked_at < 1.0
    assert "unavailable" not in caplog.text


def test_the_last_second_of_a_wait_is_one_held_request_not_a_loop(client, refunds, monkeypatch):
    created = client.submit("refunds", "Refund 120 EUR", **REFUND)
    polls = []
    real = client._call
    monkeypatch.setattr(client, "_call", lambda *a, **k: polls.append(a) or real(*a, **k))
    with pytest.raises(ApprovalTimeout):
        client.wait(created["id"], timeout=1.5)
    waits = [call for call in polls if call[1].endswith("/wait")]
    assert 1 <= len(waits) <= 3


def test_a_question_the_reviewer_decided_over_is_not_answered_and_the_decision_comes(
    client, refunds, alice, settings
):
    """Asked, then approved at once, inside the undo window: the question is no longer the
    agent's to answer, and the wait returns the decision once the window has passed."""
    settings.HITL_UNDO_SECONDS = 2
    created = client.submit("refunds", "Refund 120 EUR", **REFUND)
    request = ReviewRequest.objects.get(public_id=created["id"])
    post_message(request, author_kind="reviewer", author=alice, kind="question", body=QUESTION)
    decide_request(request.pk, by=alice, outcome="approved", version=1)
    heard = []

    outcome = client.wait(
        created["id"], timeout=30, on_message=lambda m, r: heard.append(m) or "Yes."
    )
    assert heard == [] and outcome["status"] == "approved"
    assert not Message.objects.filter(request=request, kind="answer").exists()
