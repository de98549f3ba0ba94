"""The agent API's endpoints doing their job: submit, read, wait, cancel, converse, rules."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.models import AuditEvent, Decision, Guideline, Message, ReviewRequest
from reviews.services.conversation import post_message
from reviews.services.decisions import decide_request

from .api_support import ROUTINE_SUBMISSION, AgentClient, _no_rate_limit, api, escalated
from .bad_input import row_counts

__all__ = ["_no_rate_limit", "api"]

pytestmark = pytest.mark.django_db


def submit(api, data=None, **extra):
    response = api.post_json("/api/v1/requests", data or escalated(), **extra)
    assert response.status_code in (200, 201), response.content
    return response.json()


def decide(request_id, by, outcome="approved", effective=True, **fields):
    decision = decide_request(request_id, by=by, outcome=outcome, **fields)
    if effective:  # as if the reviewer's undo window had passed
        Decision.objects.filter(pk=decision.pk).update(
            effective_at=timezone.now() - timedelta(seconds=1)
        )
    return decision


# --- submit ---------------------------------------------------------------------------------


def test_it_answers_pending_with_the_fired_rules_queue_deadline_and_links(api, refunds, alice):
    response = api.post_json("/api/v1/requests", escalated())
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert body["verdict"] == "escalate"
    assert [rule["reason"] for rule in body["fired_rules"]] == ["confidence 0.42 is below 0.7"]
    assert body["queue"] == "support"
    assert body["assignee"] == "alice"
    assert body["deadline"] and body["on_timeout"] == "reassign"
    assert body["links"]["wait"].endswith(f"/api/v1/requests/{body['id']}/wait")
    assert body["decision"] is None
    stored = ReviewRequest.objects.get(public_id=body["id"])
    assert stored.proposed_action == ROUTINE_SUBMISSION["proposed_action"]
    assert stored.options == ROUTINE_SUBMISSION["options"]


def test_it_answers_auto_approved_when_no_rule_fires(api, refunds):
    body = submit(api, dict(ROUTINE_SUBMISSION))
    assert body["status"] == "auto_approved"
    assert body["decision"]["outcome"] == "approved"
    assert body["decision"]["channel"] == "auto"
    assert body["fired_rules"] == []


def test_a_retry_with_the_same_idempotency_key_returns_the_same_request(api, refunds):
    first = api.post_json("/api/v1/requests", escalated(), HTTP_IDEMPOTENCY_KEY="order-1042")
    again = api.post_json("/api/v1/requests", escalated(), HTTP_IDEMPOTENCY_KEY="order-1042")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert ReviewRequest.objects.count() == 1


def test_the_idempotency_key_may_also_travel_in_the_body(api, refunds):
    first = submit(api, escalated(idempotency_key="k-7"))
    again = submit(api, escalated(idempotency_key="k-7"))
    assert first["id"] == again["id"]
    assert ReviewRequest.objects.count() == 1


def test_the_same_key_with_a_different_body_is_a_conflict(api, refunds):
    submit(api, escalated(), HTTP_IDEMPOTENCY_KEY="order-1042")
    response = api.post_json(
        "/api/v1/requests", escalated(title="Something else"), HTTP_IDEMPOTENCY_KEY="order-1042"
    )
    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_conflict"
    assert ReviewRequest.objects.count() == 1


def test_idempotency_keys_are_per_agent(api, refunds, agent):
    from reviews.models import Agent, AgentToken

    other = Agent.objects.create(name="other-bot")
    _, other_token = AgentToken.issue(other)
    mine = submit(api, escalated(), HTTP_IDEMPOTENCY_KEY="shared")
    theirs = submit(AgentClient(other_token), escalated(), HTTP_IDEMPOTENCY_KEY="shared")
    assert mine["id"] != theirs["id"]


# --- read -----------------------------------------------------------------------------------


def test_it_shows_the_decision_with_who_and_when_once_effective(api, refunds, alice):
    created = submit(api)
    request = ReviewRequest.objects.get(public_id=created["id"])
    decide(
        request.pk,
        alice,
        "modified",
        final_action={"action": "voucher", "amount": 60},
        chosen_option="B",
        reason="A voucher is enough here.",
    )
    body = api.get(f"/api/v1/requests/{created['id']}").json()
    assert body["status"] == "modified"
    assert body["decision"] == {
        "outcome": "modified",
        "final_action": {"action": "voucher", "amount": 60},
        "chosen_option": "B",
        "reason": "A voucher is enough here.",
        "response": None,
        "decided_by": "alice",
        "channel": "web",
        "decided_at": body["decision"]["decided_at"],
        "proposal_version": 1,
    }


def test_it_reports_pending_during_the_reviewers_undo_window(api, refunds, alice):
    created = submit(api)
    request = ReviewRequest.objects.get(public_id=created["id"])
    decide(request.pk, alice, "rejected", reason="No.", effective=False)
    body = api.get(f"/api/v1/requests/{created['id']}").json()
    assert body["status"] == "pending"
    assert body["decision"] is None
    waited = api.get(f"/api/v1/requests/{created['id']}/wait?timeout=0").json()
    assert waited["status"] == "pending"


def test_reading_a_request_takes_a_fixed_number_of_queries(
    api, refunds, alice, django_assert_max_num_queries
):
    created = submit(api)
    request = ReviewRequest.objects.get(public_id=created["id"])
    for i in range(5):
        post_message(request, author_kind="reviewer", author=alice, body=f"q{i}")
    api.get(f"/api/v1/requests/{created['id']}")  # touches the token's last_used_at once
    with django_assert_max_num_queries(3):
        body = api.get(f"/api/v1/requests/{created['id']}").json()
    assert [m["body"] for m in body["messages"]] == [f"q{i}" for i in range(5)]


def test_it_writes_the_tokens_last_use_sparingly(api, refunds, agent):
    token = agent.tokens.get()
    assert token.last_used_at is None
    api.get("/api/v1/guidelines?category=refunds")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    api.get("/api/v1/guidelines?category=refunds")
    token.refresh_from_db()
    assert token.last_used_at == first


def test_wait_answers_at_once_when_already_decided(api, refunds, alice):
    created = submit(api)
    decide(ReviewRequest.objects.get(public_id=created["id"]).pk, alice, "approved")
    body = api.get(f"/api/v1/requests/{created['id']}/wait?timeout=60").json()
    assert body["status"] == "approved"


# --- cancel ---------------------------------------------------------------------------------


def test_the_agent_can_cancel_a_pending_request(api, refunds):
    created = submit(api)
    response = api.post_json(f"/api/v1/requests/{created['id']}/cancel", {"reason": "Solved."})
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    request = ReviewRequest.objects.get(public_id=created["id"])
    assert request.audit_events.last().note == "Solved."


def test_cancel_takes_an_empty_body(api, refunds):
    created = submit(api)
    response = api.post_json(f"/api/v1/requests/{created['id']}/cancel")
    assert response.status_code == 200


def test_cancelling_a_decided_request_is_a_conflict_that_does_not_leak_an_undoable_decision(
    api, refunds, alice
):
    created = submit(api)
    decide(ReviewRequest.objects.get(public_id=created["id"]).pk, alice, "approved", False)
    response = api.post_json(f"/api/v1/requests/{created['id']}/cancel")
    assert response.status_code == 409
    assert "approved" not in response.json()["detail"]
    assert "alice" not in response.json()["detail"]


# --- messages -------------------------------------------------------------------------------


def test_the_agent_answers_a_reviewers_question(api, refunds, alice):
    created = submit(api)
    request = ReviewRequest.objects.get(public_id=created["id"])
    post_message(request, author_kind="reviewer", author=alice, kind="question", body="Photos?")
    response = api.post_json(
        f"/api/v1/requests/{created['id']}/messages", {"kind": "answer", "body": "Attached."}
    )
    assert response.status_code == 201
    assert response.json()["author_name"] == "support-bot"
    thread = api.get(f"/api/v1/requests/{created['id']}/messages").json()
    assert [(m["author"], m["kind"], m["body"]) for m in thread] == [
        ("reviewer", "question", "Photos?"),
        ("agent", "answer", "Attached."),
    ]
    assert AuditEvent.objects.filter(request=request, verb="message.answer").exists()


def test_a_revised_proposal_replaces_the_action_and_stays_with_the_reviewer(api, refunds, alice):
    created = submit(api)
    request = ReviewRequest.objects.get(public_id=created["id"])
    revised = {"action": "refund", "order": 1042, "amount": 80}
    response = api.post_json(
        f"/api/v1/requests/{created['id']}/messages",
        {"kind": "revision", "body": "Partial refund instead.", "proposed_action": revised},
    )
    assert response.status_code == 201
    request.refresh_from_db()
    assert request.proposed_action == revised
    assert request.status == "pending" and request.assignee == alice
    message = Message.objects.get(request=request)
    assert message.kind == "revision"
    assert message.payload["previous"] == ROUTINE_SUBMISSION["proposed_action"]
    assert request.audit_events.last().verb == "revised"


def test_a_revision_needs_the_new_action(api, refunds):
    created = submit(api)
    response = api.post_json(
        f"/api/v1/requests/{created['id']}/messages", {"kind": "revision", "body": "x"}
    )
    assert response.status_code == 422
    assert "proposed_action" in response.json()["fields"]


def test_a_revision_after_the_decision_is_a_conflict(api, refunds, alice):
    created = submit(api)
    decide(ReviewRequest.objects.get(public_id=created["id"]).pk, alice, "approved")
    response = api.post_json(
        f"/api/v1/requests/{created['id']}/messages",
        {"kind": "revision", "proposed_action": {"amount": 1}},
    )
    assert response.status_code == 409
    assert Message.objects.count() == 0


# --- rules and guidelines ---------------------------------------------------------------------


def test_evaluate_is_a_dry_run_that_stores_nothing(api, refunds):
    response = api.post_json(
        "/api/v1/evaluate",
        {"category": "refunds", "confidence": 0.9, "attributes": {"amount": 12400}},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["verdict"] == "escalate" and body["needs_human"] is True
    reasons = [rule["reason"] for rule in body["fired_rules"]]
    assert "amount 12,400 exceeds 10,000" in reasons
    assert ReviewRequest.objects.count() == 0


# What the tester sent: nothing but the refunds rules would escalate it, except that no person
# has approved anything alike yet (the rule "no_matching_precedent is true").
UNPRECEDENTED = {
    "category": "refunds",
    "confidence": 0.95,
    "attributes": {"amount": 20, "customer_tier": "standard"},
}
TOOL_CALL = {"action": "issue_refund", "args": {"order": 1042, "amount": 20}}
PROPOSAL = {**UNPRECEDENTED, "recommendation": "Refund in full.", "proposed_action": TOOL_CALL}


def dry_run_then_submit(api, body):
    """The dry run's answer, and the submission of the same fields right after."""
    judged = api.post_json("/api/v1/evaluate", body)
    assert judged.status_code == 200, judged.content
    submitted = submit(api, {**body, "title": "Refund 20 EUR on order 1042"})
    return judged.json(), submitted


def assert_judged_alike(judged, submitted):
    assert judged["verdict"] == submitted["verdict"]
    assert judged["fired_rules"] == submitted["fired_rules"]
    assert judged["needs_human"] == (submitted["status"] == "pending")


@pytest.mark.parametrize(
    "body",
    [
        UNPRECEDENTED,
        PROPOSAL,
        {**PROPOSAL, "recommended_option": "A"},
        {**PROPOSAL, "allowed_decisions": ["reject", "approve"]},
    ],
    ids=["attributes-only", "tool-call", "option", "approve-or-reject"],
)
def test_the_dry_run_counts_precedents_as_the_submission_does(api, refunds, body):
    judged, submitted = dry_run_then_submit(api, body)
    assert submitted["status"] == "pending"
    assert [rule["reason"] for rule in submitted["fired_rules"]] == [
        "no_matching_precedent is true"
    ]
    assert_judged_alike(judged, submitted)
    assert judged["attributes"]["no_matching_precedent"] is True
    assert judged["precedents_from"] == "server"


def test_after_a_person_approved_one_alike_the_dry_run_and_the_submission_both_go_ahead(
    api, refunds, alice
):
    first = submit(api, {**PROPOSAL, "title": "Refund 20 EUR on order 1041"})
    decide(ReviewRequest.objects.get(public_id=first["id"]).pk, alice, "approved")

    judged, submitted = dry_run_then_submit(api, PROPOSAL)
    assert submitted["status"] == "auto_approved"
    assert_judged_alike(judged, submitted)
    assert (judged["verdict"], judged["fired_rules"]) == ("autonomous", [])
    assert judged["attributes"]["matching_precedents"] == 1
    assert "counted for this proposal" in judged["precedents_note"]

    # Without the proposal the key is another (no recommendation, no tool): nothing alike was
    # approved for that, and the answer says what it counted for, as the submission agrees.
    judged, submitted = dry_run_then_submit(api, UNPRECEDENTED)
    assert submitted["status"] == "pending"
    assert_judged_alike(judged, submitted)
    assert "for the category and attributes alone" in judged["precedents_note"]


def test_a_question_is_for_a_person_in_the_dry_run_as_when_submitted(api, refunds):
    judged, submitted = dry_run_then_submit(api, {**PROPOSAL, "allowed_decisions": ["respond"]})
    assert_judged_alike(judged, submitted)
    assert (judged["verdict"], judged["needs_human"]) == ("gate", True)


def test_figures_the_agent_sends_win_in_the_dry_run_too(api, refunds):
    sent = {**UNPRECEDENTED["attributes"], "no_matching_precedent": False}
    body = {**UNPRECEDENTED, "attributes": sent}
    judged, submitted = dry_run_then_submit(api, body)
    assert submitted["status"] == "auto_approved"
    assert_judged_alike(judged, submitted)
    assert judged["precedents_from"] == "agent"
    assert "as sent" in judged["precedents_note"]


def test_a_dry_run_of_a_whole_proposal_writes_nothing(api, refunds, alice):
    first = submit(api, {**PROPOSAL, "title": "Refund 20 EUR on order 1041"})
    decide(ReviewRequest.objects.get(public_id=first["id"]).pk, alice, "approved")
    before = row_counts()
    response = api.post_json("/api/v1/evaluate", {**PROPOSAL, "allowed_decisions": ["approve"]})
    assert response.status_code == 200
    assert response.json()["verdict"] == "autonomous"
    assert row_counts() == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("allowed_decisions", []),
        ("allowed_decisions", ["approve", "ship"]),
        ("allowed_decisions", "approve"),
        ("recommended_option", "x" * 51),
        ("recommendation", 7),
        ("proposed_action", ["issue_refund"]),
        ("proposed_action", {"note": "a\x00b"}),
    ],
)
def test_a_bad_proposal_field_in_the_dry_run_is_a_422_naming_it(api, refunds, field, value):
    good = {**PROPOSAL, "recommended_option": "A", "allowed_decisions": ["approve", "reject"]}
    assert api.post_json("/api/v1/evaluate", good).status_code == 200
    before = row_counts()
    response = api.post_json("/api/v1/evaluate", {**good, field: value})
    assert response.status_code == 422
    assert {name.split(".")[0] for name in response.json()["fields"]} == {field}
    assert row_counts() == before


def test_guidelines_give_the_category_text_and_its_active_guidelines(api, refunds):
    refunds.guidelines = "Refunds past 30 days need evidence."
    refunds.save()
    Guideline.objects.create(category=refunds, text="Vouchers first for small amounts.")
    Guideline.objects.create(category=refunds, text="Retired advice.", is_active=False)
    response = api.get("/api/v1/guidelines?category=refunds")
    assert response.status_code == 200
    body = response.json()
    assert body["text"] == "Refunds past 30 days need evidence."
    assert [g["text"] for g in body["guidelines"]] == ["Vouchers first for small amounts."]


def test_guidelines_of_an_unknown_category_are_a_404(api, refunds):
    assert api.get("/api/v1/guidelines?category=nope").status_code == 404


# --- LangGraph interrupts ---------------------------------------------------------------------

INTERRUPT = {
    "category": "refunds",
    "action_request": {"action": "issue_refund", "args": {"order": 1042, "amount": 120}},
    "config": {
        "allow_accept": True,
        "allow_edit": True,
        "allow_respond": True,
        "allow_ignore": True,
    },
    "description": "Refund 120 EUR for a damaged parcel?\nPhotos attached.",
    "confidence": 0.4,
}


def interrupt(api, **config):
    response = api.post_json(
        "/api/v1/interrupts", {**INTERRUPT, "config": {**INTERRUPT["config"], **config}}
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_a_langgraph_interrupt_becomes_a_request_with_its_action_as_the_proposal(api, refunds):
    body = interrupt(api)
    assert body["status"] == "pending" and body["response"] is None
    request = ReviewRequest.objects.get(public_id=body["id"])
    assert request.proposed_action == {
        "action": "issue_refund",
        "args": {"order": 1042, "amount": 120},
    }
    assert request.title == "Refund 120 EUR for a damaged parcel?"
    assert request.situation == INTERRUPT["description"]


EDITED = {"action": "issue_refund", "args": {"order": 1042, "amount": 60}}


@pytest.mark.parametrize(
    ("outcome", "fields", "expected"),
    [
        ("approved", {}, {"type": "accept", "args": None}),
        ("modified", {"final_action": EDITED}, {"type": "edit", "args": EDITED}),
        (
            "rejected",
            {"reason": "Photos first.", "responded": True},
            {"type": "response", "args": "Photos first."},
        ),
        ("rejected", {"reason": "No."}, {"type": "ignore", "args": "No."}),
    ],
    ids=["accept", "edit", "response", "ignore"],
)
def test_the_decision_answers_in_langgraphs_human_response_shape(
    api, refunds, alice, outcome, fields, expected
):
    body = interrupt(api)
    decide(ReviewRequest.objects.get(public_id=body["id"]).pk, alice, outcome, **fields)
    answer = api.get(body["answer_url"]).json()
    assert answer["response"] == expected


def test_a_rejection_is_ignore_with_its_reason_when_no_response_is_allowed(api, refunds, alice):
    body = interrupt(api, allow_respond=False)
    decide(ReviewRequest.objects.get(public_id=body["id"]).pk, alice, "rejected", reason="No.")
    assert api.get(body["answer_url"]).json()["response"] == {"type": "ignore", "args": "No."}


@pytest.mark.parametrize(
    ("config", "allowed"),
    [
        ({}, ["approve", "modify", "reject", "respond"]),
        ({"allow_ignore": False}, ["approve", "modify", "respond"]),
        ({"allow_accept": False, "allow_edit": False}, ["reject", "respond"]),
        (
            {"allow_accept": True, "allow_edit": False, "allow_respond": False},
            ["approve", "reject"],
        ),
    ],
)
def test_an_interrupts_allow_flags_are_the_decisions_a_reviewer_is_offered(
    api, refunds, config, allowed
):
    body = interrupt(api, **config)
    assert ReviewRequest.objects.get(public_id=body["id"]).allowed_decisions == allowed


def test_an_interrupt_that_allows_nothing_is_refused(api, refunds):
    off = dict.fromkeys(INTERRUPT["config"], False)
    response = api.post_json("/api/v1/interrupts", {**INTERRUPT, "config": off})
    assert response.status_code == 422
    assert "allowed_decisions" in response.json()["fields"]
    assert not ReviewRequest.objects.exists()


def test_a_cancelled_interrupt_is_ignored(api, refunds):
    body = interrupt(api)
    api.post_json(f"/api/v1/requests/{body['id']}/cancel")
    assert api.get(body["answer_url"]).json()["response"] == {"type": "ignore", "args": None}


# --- docs -------------------------------------------------------------------------------------


def test_the_openapi_schema_and_docs_page_are_served_without_a_cdn(client):
    schema = client.get("/api/v1/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/requests/{request_id}/wait" in paths
    assert "/api/v1/interrupts" in paths
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert b"cdn.jsdelivr" not in docs.content and b"/static/ninja/" in docs.content


def test_ping_is_a_bare_json_view(client):
    assert client.get("/api/v1/ping").json() == {"ok": True}
    assert client.post("/api/v1/ping").status_code == 405
