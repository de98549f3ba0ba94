"""Agents name the decisions a reviewer may make (allowed_decisions), and read a reviewer's
answer in the action's place as decision.response, in the API and the webhook alike."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.api_schemas import VerbName
from reviews.models import Agent, Decision, ReviewRequest, Verb, WebhookDelivery
from reviews.services.decisions import decide_request
from reviews.tasks import deliver_webhook

from .api_support import _no_rate_limit, api, escalated
from .bad_input import row_counts
from .test_webhooks_delivery import Receiver

__all__ = ["_no_rate_limit", "api"]

pytestmark = pytest.mark.django_db


def test_the_schemas_verbs_are_the_models():
    assert list(VerbName.__args__) == list(Verb.values)


def test_a_request_allows_approve_modify_and_reject_unless_told(api, refunds):
    body = api.post_json("/api/v1/requests", escalated()).json()
    assert body["allowed_decisions"] == ["approve", "modify", "reject"]


def test_it_stores_the_allowed_decisions_in_their_usual_order(api, refunds):
    response = api.post_json(
        "/api/v1/requests", escalated(allowed_decisions=["respond", "reject", "respond"])
    )
    assert response.status_code == 201, response.content
    assert response.json()["allowed_decisions"] == ["reject", "respond"]
    request = ReviewRequest.objects.get(public_id=response.json()["id"])
    assert request.allowed_decisions == ["reject", "respond"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["approve", "sing"], "Input should be 'approve', 'modify', 'reject' or 'respond'"),
        ([], "List should have at least 1 item after validation, not 0"),
        ("approve", "Input should be a valid list"),
        ([1], "Input should be 'approve', 'modify', 'reject' or 'respond'"),
        (["Approve"], "Input should be 'approve', 'modify', 'reject' or 'respond'"),
    ],
    ids=["unknown verb", "empty", "not a list", "a number", "capitalised"],
)
def test_bad_allowed_decisions_are_refused_and_nothing_is_written(api, refunds, value, message):
    before = row_counts()
    response = api.post_json("/api/v1/requests", escalated(allowed_decisions=value))
    assert response.status_code == 422, response.content
    fields = response.json()["fields"]
    assert any(key.startswith("allowed_decisions") for key in fields), fields
    assert any(message in m for messages in fields.values() for m in messages), fields
    assert row_counts() == before


def respond(request_id: int, by, answer: str) -> Decision:
    decision = decide_request(
        request_id, by=by, outcome="rejected", reason=answer, responded=True, version=1
    )
    # As if the reviewer's undo window had passed.
    Decision.objects.filter(pk=decision.pk).update(
        effective_at=timezone.now() - timedelta(seconds=1)
    )
    return decision


def test_a_response_is_a_rejection_with_the_answer(api, refunds, alice):
    created = api.post_json(
        "/api/v1/requests",
        escalated(title="Which warehouse ships order 1042?", allowed_decisions=["respond"]),
    ).json()
    respond(ReviewRequest.objects.get(public_id=created["id"]).pk, alice, "Rotterdam")
    body = api.get(f"/api/v1/requests/{created['id']}").json()
    assert body["status"] == "rejected"
    assert body["decision"]["outcome"] == "rejected"
    assert body["decision"]["response"] == "Rotterdam"
    assert body["decision"]["reason"] == "Rotterdam"


def test_a_plain_rejection_has_a_null_response(api, refunds, alice):
    created = api.post_json("/api/v1/requests", escalated()).json()
    request = ReviewRequest.objects.get(public_id=created["id"])
    decide_request(request.pk, by=alice, outcome="rejected", reason="No photos.")
    Decision.objects.update(effective_at=timezone.now() - timedelta(seconds=1))
    decision = api.get(f"/api/v1/requests/{created['id']}").json()["decision"]
    assert (decision["outcome"], decision["response"]) == ("rejected", None)


def test_the_webhook_carries_the_response_too(api, agent, refunds, alice, settings):
    settings.HITL_UNDO_SECONDS = 0
    with Receiver([200]) as receiver:
        Agent.objects.filter(pk=agent.pk).update(webhook_url=receiver.url)
        created = api.post_json(
            "/api/v1/requests", escalated(allowed_decisions=["reject", "respond"])
        ).json()
        respond(ReviewRequest.objects.get(public_id=created["id"]).pk, alice, "Rotterdam")
        delivery = WebhookDelivery.objects.get(event="request.decided")
        assert deliver_webhook(delivery.pk) == "succeeded"
    [(_, body, _)] = receiver.calls
    sent = json.loads(body)["request"]["decision"]
    shown = api.get(f"/api/v1/requests/{created['id']}").json()["decision"]
    assert sent["outcome"] == "rejected" and sent["response"] == "Rotterdam"
    assert sent == {**shown, "decided_at": sent["decided_at"]}
