"""Whose turn a pending request waits on: a reviewer's question hands it to the agent, whose
wait returns with the question, and the agent's answer hands it back with the deadline moved
on by exactly the agent's time."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.models import AuditEvent, Message, ReviewRequest
from reviews.services.bulk import decide_requests_in_bulk
from reviews.services.conversation import post_message, revise_proposal
from reviews.services.turns import time_out_turns

from .api_support import _no_rate_limit, api, escalated

__all__ = ["_no_rate_limit", "api"]

pytestmark = pytest.mark.django_db


def submitted(api) -> tuple[dict, ReviewRequest]:
    created = api.post_json("/api/v1/requests", escalated()).json()
    return created, ReviewRequest.objects.get(public_id=created["id"])


def ask(request, alice, body="Did the customer send photos?", kind="question"):
    return post_message(request, author_kind="reviewer", author=alice, kind=kind, body=body)


def test_a_question_hands_the_request_to_the_agent_and_its_wait_returns_at_once(
    api, refunds, alice
):
    created, request = submitted(api)
    assert created["turn"] == "reviewer" and created["reviewer_message"] is None
    ask(request, alice)

    started = timezone.now()
    body = api.get(f"/api/v1/requests/{created['id']}/wait?timeout=30").json()
    assert (timezone.now() - started).total_seconds() < 5  # not the 30 s timeout
    assert body["status"] == "pending" and body["turn"] == "agent"
    assert body["reviewer_message"]["body"] == "Did the customer send photos?"
    assert body["reviewer_message"]["author_name"] == "alice"
    assert body["answer_due"] is not None
    event = AuditEvent.objects.get(request=request, verb="turn.agent")
    assert event.actor_label == "alice" and "alice asked a question" in event.note


def test_the_answer_hands_it_back_and_the_deadline_moves_by_the_agents_time(api, refunds, alice):
    created, request = submitted(api)
    deadline = request.deadline
    ask(request, alice, kind="instructions", body="Offer a voucher instead.")
    ReviewRequest.objects.filter(pk=request.pk).update(
        turn_since=timezone.now() - timedelta(minutes=10)
    )

    response = api.post_json(
        f"/api/v1/requests/{created['id']}/messages", {"kind": "answer", "body": "Done."}
    )

    assert response.status_code == 201
    request.refresh_from_db()
    assert request.turn == "reviewer" and request.rounds == 1
    assert request.answer_due is None
    moved = (request.deadline - deadline).total_seconds()
    assert 600 <= moved < 660
    assert 600 <= request.agent_seconds < 660
    event = AuditEvent.objects.get(request=request, verb="turn.reviewer")
    assert "The deadline moved 6" in event.note
    body = api.get(f"/api/v1/requests/{created['id']}").json()
    assert body["turn"] == "reviewer" and body["rounds"] == 1


def test_a_revision_answers_the_reviewer_too(api, refunds, alice):
    _created, request = submitted(api)
    ask(request, alice)
    revise_proposal(request.pk, agent=request.agent, proposed_action={"amount": 60}, body="Half.")
    request.refresh_from_db()
    assert (request.turn, request.rounds, request.proposal_version) == ("reviewer", 1, 2)


def test_an_answer_nobody_asked_for_is_refused_and_writes_nothing(api, refunds, alice):
    created, request = submitted(api)
    response = api.post_json(
        f"/api/v1/requests/{created['id']}/messages", {"kind": "answer", "body": "Hello?"}
    )
    assert response.status_code == 409
    assert response.json()["error"] == "not_waiting_on_agent"
    assert not Message.objects.filter(request=request).exists()
    request.refresh_from_db()
    assert request.turn == "reviewer" and request.rounds == 0


def test_a_comment_asks_the_agent_nothing(api, refunds, alice):
    _created, request = submitted(api)
    ask(request, alice, kind="comment", body="Looking at it.")
    request.refresh_from_db()
    assert request.turn == "reviewer"


def test_an_agent_that_never_answers_goes_back_to_the_reviewer_marked_unanswered(
    api, refunds, alice
):
    _created, request = submitted(api)
    ask(request, alice)
    request.refresh_from_db()
    assert time_out_turns(now=request.answer_due - timedelta(seconds=1))["returned"] == 0
    tally = time_out_turns(now=request.answer_due + timedelta(seconds=1))
    assert tally["returned"] == 1
    request.refresh_from_db()
    assert request.turn == "reviewer" and request.rounds == 0 and request.status == "pending"
    note = Message.objects.filter(request=request, author_kind="system").get()
    assert note.body == "The agent did not answer within 1 hour."


def test_a_batch_leaves_a_request_waiting_on_the_agent_alone(api, refunds, alice):
    _created, asked = submitted(api)
    _created, other = submitted(api)
    ask(asked, alice)

    result = decide_requests_in_bulk([asked.pk, other.pk], by=alice, outcome="approved")

    assert [d.request_id for d in result.decided] == [other.pk]
    assert result.conflict_codes == {asked.pk: "waiting_on_agent"}
    asked.refresh_from_db()
    assert (asked.status, asked.turn) == ("pending", "agent")


def test_a_question_is_not_judged_by_rules_made_for_proposed_actions(api, refunds):
    body = api.post_json(
        "/api/v1/requests",
        {
            "category": "refunds",
            "title": "Which address should the replacement go to?",
            "options": [{"key": "old", "label": "On the order"}, {"key": "new", "label": "New"}],
            "allowed_decisions": ["respond"],
            "default_answer": "old",
        },
    ).json()
    assert body["status"] == "pending" and body["verdict"] == "gate"
    # No confidence was sent: a rule on it would say it "cannot evaluate", which means nothing.
    assert body["fired_rules"] == []
