"""Streamed exports, the read-only audit trail, and guidelines written from a decision."""

import csv
import io
import json

import pytest
from django.urls import reverse

from reviews.models import AuditEvent, Guideline, ReviewRequest
from reviews.services.conversation import post_message
from reviews.services.decisions import decide_request
from reviews.services.submission import submit_request

from .metrics_helpers import decided

pytestmark = pytest.mark.django_db


@pytest.fixture
def some(agent, refunds, alice):
    decided(agent, refunds, "approved", by=alice)
    decided(
        agent,
        refunds,
        "modified",
        by=alice,
        final_action={"action": "refund", "amount": 50},
        reason="=HYPERLINK(evil)",
    )
    return decided(agent, refunds, "auto")


def body(response):
    assert response.streaming  # rows are written as they are read, never all held at once
    return b"".join(response.streaming_content).decode()


def test_the_jsonl_export_streams_each_decision_with_context_and_delta(client, manager, some):
    client.force_login(manager)
    response = client.get(reverse("metrics_export"), {"format": "jsonl", "days": "7"})
    assert response["Content-Type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in body(response).splitlines()]
    assert sorted(r["channel"] for r in rows) == ["auto", "web", "web"]
    modified = next(r for r in rows if r["outcome"] == "modified")
    assert modified["proposed_action"] == {"action": "refund", "amount": 100}
    assert modified["final_action"] == {"action": "refund", "amount": 50}
    assert modified["delta"] == ["amount lowered to 50%"]
    assert modified["decided_by"] == "alice" and modified["category"] == "refunds"


def test_the_csv_export_has_a_header_and_defuses_formulas(client, manager, some):
    client.force_login(manager)
    response = client.get(reverse("metrics_export"), {"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert len(rows) == 3
    assert next(r for r in rows if r["outcome"] == "modified")["reason"] == "'=HYPERLINK(evil)"


@pytest.mark.parametrize("lead", ["\t", "\r", "\n"])
def test_the_csv_export_defuses_formulas_behind_a_tab_or_line_break(
    client, manager, agent, refunds, alice, lead
):
    situation = f"{lead}=HYPERLINK(evil)"  # agent text, kept as the agent sent it
    request = decided(agent, refunds, "rejected", by=alice)
    ReviewRequest.objects.filter(pk=request.pk).update(situation=situation)
    client.force_login(manager)
    response = client.get(reverse("metrics_export"), {"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(body(response), newline="")))
    assert [r["situation"] for r in rows] == ["'" + situation]


def test_the_export_filters_by_agent_and_leaves_out_undoable_decisions(
    client, manager, some, agent, refunds, alice
):
    pending = submit_request(
        agent, category=refunds, title="x", confidence=0.1, attributes={"amount": 1}
    ).request
    decide_request(pending.pk, by=alice, outcome="approved")  # inside its undo window
    client.force_login(manager)
    rows = body(client.get(reverse("metrics_export"), {"agent": agent.pk})).splitlines()
    assert len(rows) == 3
    assert body(client.get(reverse("metrics_export"), {"agent": 999999})) == ""


def test_the_export_is_for_managers_and_only_a_get(client, alice, manager):
    client.force_login(alice)
    assert client.get(reverse("metrics_export")).status_code == 403
    client.force_login(manager)
    assert client.post(reverse("metrics_export")).status_code == 405


def test_the_audit_trail_searches_by_verb_actor_and_request(client, manager, some, alice):
    client.force_login(manager)
    page = client.get(reverse("audit"), {"verb": "decided.modified"}).content.decode()
    assert "decided.modified" in page and "auto_approved" not in page
    page = client.get(reverse("audit"), {"actor": "alice"}).content.decode()
    assert "decided.approved" in page and "submitted" not in page
    page = client.get(reverse("audit"), {"request": str(some.public_id)}).content.decode()
    assert "auto_approved" in page and "decided.modified" not in page
    page = client.get(reverse("audit"), {"category": "refunds", "days": "7"}).content.decode()
    assert page.count("<tr>") >= 6


def test_a_request_s_history_lists_every_event_in_order(client, manager, agent, refunds, alice):
    request = decided(agent, refunds, "rejected", by=alice, reason="No receipt")
    post_message(request, author_kind="reviewer", author=alice, body="Why?")
    client.force_login(manager)
    page = client.get(reverse("audit_request", args=[request.pk])).content.decode()
    assert page.index("submitted") < page.index("decided.rejected")
    assert "No receipt" in page and "Why?" in page


def test_the_audit_export_streams_and_the_audit_pages_only_read(client, manager, alice, some):
    client.force_login(manager)
    rows = [json.loads(x) for x in body(client.get(reverse("audit_export"))).splitlines()]
    assert {r["verb"] for r in rows} >= {"submitted", "decided.modified", "auto_approved"}
    for name, args in [("audit", []), ("audit_export", []), ("audit_request", [some.pk])]:
        assert client.post(reverse(name, args=args)).status_code == 405
        assert client.delete(reverse(name, args=args)).status_code == 405
    client.force_login(alice)
    assert client.get(reverse("audit")).status_code == 403
    assert client.get(reverse("audit_request", args=[some.pk])).status_code == 403


def test_audit_pages_take_a_few_queries(client, manager, some, django_assert_max_num_queries):
    client.force_login(manager)
    with django_assert_max_num_queries(8):
        client.get(reverse("audit"))
    with django_assert_max_num_queries(16):
        client.get(reverse("audit_request", args=[some.pk]))


def test_the_audit_log_cannot_be_changed_by_any_admin_action(client, admin_user, some):
    client.force_login(admin_user)
    event = AuditEvent.objects.first()
    url = reverse("admin:reviews_auditevent_delete", args=[event.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:reviews_auditevent_changelist")
    client.post(changelist, {"action": "delete_selected", "_selected_action": [event.pk]})
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_reviewer_writes_a_guideline_from_a_decision(client, alice, agent, refunds):
    request = decided(agent, refunds, "modified", by=alice)
    client.force_login(alice)
    url = reverse("guideline_new", args=[request.pk])
    assert client.get(url).status_code == 200
    text = "Enterprise accounts with an active contract: refund window 60 days"
    assert client.post(url, {"text": text}).status_code == 302
    guideline = Guideline.objects.get()
    assert (guideline.category, guideline.source_request, guideline.created_by) == (
        refunds,
        request,
        alice,
    )
    assert AuditEvent.objects.filter(verb="guideline.created", request=request).exists()
    assert "Write the guideline" in client.post(url, {"text": " "}).content.decode()


def test_guidelines_are_for_the_request_s_reviewers_and_admins(
    client, bob, manager, admin_user, agent, refunds, alice
):
    request = decided(agent, refunds, "approved", by=alice)
    url = reverse("guideline_new", args=[request.pk])
    client.force_login(bob)
    assert client.get(url).status_code == 404
    client.force_login(manager)
    assert client.get(url).status_code == 403
    client.force_login(admin_user)
    assert client.get(url).status_code == 200
    assert client.put(url).status_code == 405


def test_the_audit_export_comes_as_csv_with_its_columns(client, manager, some):
    client.force_login(manager)
    response = client.get(reverse("audit_export"), {"format": "csv"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert list(rows[0]) == [
        "id", "created_at", "actor", "verb", "request_id", "category", "before", "after", "note"
    ]  # fmt: skip
    assert {"submitted", "decided.modified"} <= {r["verb"] for r in rows}
