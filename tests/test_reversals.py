"""Reversing an executed action: who may, what is refused, and how the agent is told (its
request's JSON, the reversals feed, the Python client, a signed webhook to a real receiver)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from hitl_client import AsyncClient, Client
from reviews.models import AuditEvent, Reversal, ReviewRequest, WebhookDelivery
from reviews.services.decisions import cancel_request, decide_request
from reviews.services.errors import TransitionError
from reviews.services.reversals import reverse_action
from reviews.services.submission import submit_request

from .api_support import AgentClient, _no_rate_limit
from .conftest import ROUTINE, run_coroutine, wait_for
from .test_inbox_views import submit
from .test_webhooks_delivery import Receiver, independently_verified

__all__ = ["_no_rate_limit"]


def auto_approved(agent, category, **overrides):
    fields = {"title": "Refund 40 EUR", "confidence": 0.95, "attributes": dict(ROUTINE)}
    request = submit_request(agent, category=category, **{**fields, **overrides}).request
    assert request.status == ReviewRequest.Status.AUTO_APPROVED
    return request


def approved_long_ago(agent, category, by, outcome="approved"):
    """A request a person decided, its undo window long past: the agent has acted on it."""
    request = submit(agent, category)
    decided_at = timezone.now() - timedelta(hours=1)
    kwargs = {"final_action": {"amount": 60}} if outcome == "modified" else {}
    decide_request(request.pk, by=by, outcome=outcome, now=decided_at, **kwargs)
    request.refresh_from_db()
    return request


# --- the service: what may be reversed -------------------------------------------------------


def test_an_auto_approved_action_is_reversed_with_its_correction_and_audited(
    agent, refunds, manager
):
    request = auto_approved(agent, refunds)
    reversal = reverse_action(
        request.pk,
        by=manager,
        reason="The customer had already been refunded.",
        correction="Claw the refund back.",
        corrected_action={"action": "none"},
    )
    assert reversal.agent == agent and reversal.reversed_by == manager
    event = AuditEvent.objects.get(request=request, verb="decision.reversed")
    assert event.actor_user == manager
    assert event.note == "The customer had already been refunded."
    assert event.after["reversal"]["correction"] == "Claw the refund back."
    assert event.after["reversal"]["corrected_action"] == {"action": "none"}


def test_a_decision_by_a_person_is_reversible_once_the_agent_has_acted(
    agent, refunds, alice, manager
):
    request = approved_long_ago(agent, refunds, alice, outcome="modified")
    reverse_action(request.pk, by=manager, reason="Wrong amount.")
    assert Reversal.objects.filter(request=request).exists()


def test_a_timeout_approval_is_reversible(agent, refunds, manager):
    from reviews.services.deadlines import time_out_request

    refunds.timeout_action = "approve"
    refunds.save()
    request = submit(agent, refunds)
    ReviewRequest.objects.filter(pk=request.pk).update(
        deadline=timezone.now() - timedelta(minutes=1)
    )
    time_out_request(request.pk)
    request.refresh_from_db()
    assert request.status == "approved"
    reverse_action(request.pk, by=manager, reason="Nobody looked; it was wrong.")
    assert request.decision.channel == "timeout"
    assert Reversal.objects.filter(request=request).exists()


@pytest.mark.parametrize(
    "state, message",
    [
        ("pending", "still pending"),
        ("undo_window", "undo window"),
        ("rejected", "never ran"),
        ("cancelled", "never ran"),
        ("reversed", "Already reversed"),
    ],
)
def test_what_never_ran_or_can_still_be_undone_is_refused_and_nothing_is_written(
    agent, refunds, alice, manager, settings, state, message
):
    settings.HITL_UNDO_SECONDS = 60
    request = submit(agent, refunds)
    if state == "undo_window":
        decide_request(request.pk, by=alice, outcome="approved")
    elif state == "rejected":
        decide_request(request.pk, by=alice, outcome="rejected", reason="No.")
    elif state == "cancelled":
        cancel_request(request.pk, agent=agent)
    elif state == "reversed":
        request = approved_long_ago(agent, refunds, alice)
        reverse_action(request.pk, by=manager, reason="First.")
    before = (Reversal.objects.count(), AuditEvent.objects.filter(verb="decision.reversed").count())
    deliveries = WebhookDelivery.objects.count()
    with pytest.raises(TransitionError, match=message):
        reverse_action(request.pk, by=manager, reason="Wrong.")
    after = (Reversal.objects.count(), AuditEvent.objects.filter(verb="decision.reversed").count())
    assert after == before and WebhookDelivery.objects.count() == deliveries


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"reason": "   "}, "reason"),
        ({"reason": "bad\x00"}, "reason"),
        ({"reason": "x" * 5001}, "reason"),
        ({"reason": "Wrong.", "correction": "nul\x00"}, "correction"),
        ({"reason": "Wrong.", "corrected_action": [1, 2]}, "corrected_action"),
        ({"reason": "Wrong.", "corrected_action": {"x": float("nan")}}, "corrected_action"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(agent, refunds, manager, fields, field):
    request = auto_approved(agent, refunds)
    with pytest.raises(ValidationError) as refused:
        reverse_action(request.pk, by=manager, **fields)
    assert field in refused.value.message_dict
    assert not Reversal.objects.exists()
    assert not AuditEvent.objects.filter(verb="decision.reversed").exists()


# --- the agent's API ---------------------------------------------------------------------------


def test_the_requests_json_carries_the_reversal(agent, agent_token, refunds, manager):
    request = auto_approved(agent, refunds)
    api = AgentClient(agent_token)
    assert api.get(f"/api/v1/requests/{request.public_id}").json()["reversal"] is None
    reverse_action(request.pk, by=manager, reason="Refunded twice.", correction="Claw it back.")
    for path in (
        f"/api/v1/requests/{request.public_id}",
        f"/api/v1/requests/{request.public_id}/wait?timeout=5",
    ):
        body = api.get(path).json()
        assert body["status"] == "auto_approved"
        assert body["reversal"]["reason"] == "Refunded twice."
        assert body["reversal"]["correction"] == "Claw it back."
        assert body["reversal"]["reversed_by"] == manager.get_username()


def test_a_reversal_changes_the_answers_fingerprint(agent, refunds, manager):
    from reviews.api import answer_fingerprint, answer_fingerprints, requests_for_answers

    request = auto_approved(agent, refunds)
    before = answer_fingerprints([request.pk])[request.pk]
    assert answer_fingerprint(requests_for_answers([request.pk])[request.pk]) == before
    reverse_action(request.pk, by=manager, reason="Wrong.")
    after = answer_fingerprints([request.pk])[request.pk]
    assert after != before
    assert answer_fingerprint(requests_for_answers([request.pk])[request.pk]) == after


def test_the_feed_lists_only_this_agents_reversals_after_the_cursor(
    agent, agent_token, refunds, manager
):
    from reviews.models import Agent

    other = Agent.objects.create(name="other-bot")
    first = auto_approved(agent, refunds)
    theirs = auto_approved(other, refunds)
    second = auto_approved(agent, refunds)
    reverse_action(first.pk, by=manager, reason="One.")
    reverse_action(theirs.pk, by=manager, reason="Not yours.")
    reverse_action(second.pk, by=manager, reason="Two.", corrected_action={"amount": 0})
    api = AgentClient(agent_token)
    page = api.get("/api/v1/reversals?timeout=0").json()
    assert [r["reversal"]["reason"] for r in page["reversals"]] == ["One.", "Two."]
    assert page["reversals"][0]["request"] == str(first.public_id)
    assert page["reversals"][1]["reversal"]["corrected_action"] == {"amount": 0}
    assert page["reversals"][0]["decision"]["channel"] == "auto"
    rest = api.get(f"/api/v1/reversals?timeout=0&after={page['reversals'][0]['reversal']['id']}")
    assert [r["reversal"]["reason"] for r in rest.json()["reversals"]] == ["Two."]
    empty = api.get(f"/api/v1/reversals?timeout=0&after={page['cursor']}").json()
    assert empty == {"reversals": [], "cursor": page["cursor"]}
    bad = api.get("/api/v1/reversals?after=-1")
    assert bad.status_code == 422 and bad.json()["error"] == "invalid"
    past_any_id = api.get(f"/api/v1/reversals?timeout=0&after={2**63}")
    assert past_any_id.status_code == 422 and "after" in past_any_id.json()["fields"]
    assert AgentClient("hitl_nope").get("/api/v1/reversals?timeout=0").status_code == 401


# --- heard live: the feed's long-poll, the client, the webhook ----------------------------------


def reverse_soon(request_id, by, delay=1.0, **fields):
    def run():
        try:
            time.sleep(delay)
            reverse_action(request_id, by=by, reason="Wrong refund.", **fields)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_client_hears_a_reversal_while_it_waits(
    live_server, agent, agent_token, refunds, manager
):
    request = auto_approved(agent, refunds)
    client = Client(live_server.url, agent_token, retries=0)
    assert client.reversals(timeout=0) == {"reversals": [], "cursor": 0}
    thread = reverse_soon(request.pk, manager, correction="Claw it back.")
    started = time.monotonic()
    heard = client.reversals(after=0, timeout=20)
    thread.join()
    assert time.monotonic() - started < 10  # woken by the reversal, not the timeout
    (event,) = heard["reversals"]
    assert event["request"] == str(request.public_id)
    assert event["reversal"]["correction"] == "Claw it back."
    assert heard["cursor"] == event["reversal"]["id"]
    assert client.get(str(request.public_id))["reversal"]["reason"] == "Wrong refund."
    assert client.reversals(after=heard["cursor"], timeout=1)["reversals"] == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_async_client_hears_a_reversal(live_server, agent, agent_token, refunds, manager):
    request = auto_approved(agent, refunds)

    async def listen():
        async with AsyncClient(live_server.url, agent_token, retries=0) as client:
            return await client.reversals(timeout=20)

    thread = reverse_soon(request.pk, manager)
    heard = run_coroutine(listen())
    thread.join()
    assert [e["request"] for e in heard["reversals"]] == [str(request.public_id)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_signed_decision_reversed_webhook_reaches_a_real_receiver(
    agent, refunds, manager, celery_worker
):
    with Receiver([200]) as receiver:
        agent.webhook_url = receiver.url
        agent.save()
        request = auto_approved(agent, refunds)
        reverse_action(request.pk, by=manager, reason="Refunded twice.", correction="Claw it back.")
        call = wait_for(
            lambda: next((c for c in receiver.calls if b"decision.reversed" in c[1]), None)
        )
    headers, body, _ = call
    assert independently_verified(agent.webhook_secret, headers, body)
    assert headers["X-HITL-Event"] == "decision.reversed"
    payload = json.loads(body)
    assert payload["event"] == "decision.reversed"
    assert payload["request"]["id"] == str(request.public_id)
    assert payload["request"]["reversal"]["reason"] == "Refunded twice."
    assert payload["request"]["reversal"]["correction"] == "Claw it back."
    delivery = WebhookDelivery.objects.get(request=request, event="decision.reversed")
    assert delivery.state == WebhookDelivery.State.SUCCEEDED


def test_a_reversal_is_a_kept_record_the_orm_will_not_delete(agent, refunds, manager):
    from django.db import transaction

    from reviews.retention import RetentionError

    reversal = reverse_action(auto_approved(agent, refunds).pk, by=manager, reason="Wrong.")
    with pytest.raises(RetentionError, match="kept for"), transaction.atomic():
        reversal.delete()
    assert Reversal.objects.filter(pk=reversal.pk).exists()


@pytest.mark.postgres
def test_the_database_refuses_a_raw_delete_of_a_reversal(agent, refunds, manager):
    from django.db import DatabaseError, transaction

    reversal = reverse_action(auto_approved(agent, refunds).pk, by=manager, reason="Wrong.")
    with (
        pytest.raises(DatabaseError, match="kept for"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM reviews_reversal WHERE id = %s", [reversal.pk])
    assert Reversal.objects.filter(pk=reversal.pk).exists()
