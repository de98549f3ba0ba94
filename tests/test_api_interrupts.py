"""POST /interrupts takes LangChain's and LangGraph's interrupts as they are, and
GET /interrupts/{id} answers with the exact value the graph resumes with."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.models import Agent, AgentToken, AuditEvent, Category, Decision, ReviewRequest
from reviews.services.deadlines import time_out_request

from .api_support import AgentClient, _no_rate_limit, api
from .test_api_requests import decide

__all__ = ["_no_rate_limit", "api"]

pytestmark = pytest.mark.django_db

REFUND = {"name": "issue_refund", "args": {"order": 1042, "amount": 120}, "description": "Refund?"}
EMAIL = {"name": "send_email", "args": {"to": "ana@example.com"}, "description": "Tell her."}
HITL_REQUEST = {
    "category": "refunds",
    "confidence": 0.4,
    "action_requests": [REFUND, EMAIL],
    "review_configs": [
        {"action_name": "issue_refund", "allowed_decisions": ["approve", "edit", "reject"]},
        {"action_name": "send_email", "allowed_decisions": ["approve", "reject", "respond"]},
    ],
}
TOOL_APPROVAL = {
    "category": "refunds",
    "confidence": 0.4,
    "type": "tool_approval",
    "tool_call_id": "call_7",
    "name": "issue_refund",
    "args": {"order": 1042, "amount": 120},
    "description": "Refund?",
}
HUMAN_INTERRUPT = {
    "category": "refunds",
    "confidence": 0.4,
    "action_request": {"action": "issue_refund", "args": {"order": 1042, "amount": 120}},
    "config": {
        "allow_accept": True,
        "allow_edit": True,
        "allow_respond": True,
        "allow_ignore": True,
    },
    "description": "Refund 120 EUR?",
}


def post(api, body, status=201, **headers):
    response = api.post_json("/api/v1/interrupts", body, **headers)
    assert response.status_code == status, response.content
    return response.json()


def answer(api, body):
    return api.get(body["answer_url"] + "?timeout=0").json()


def requests_of(body) -> list[ReviewRequest]:
    return [ReviewRequest.objects.get(public_id=id) for id in body["requests"]]


# --- LangChain HITLRequest (batched) ----------------------------------------------------------


def test_a_hitl_request_makes_one_request_per_action_in_one_bundle(api, refunds):
    body = post(api, HITL_REQUEST)
    refund, email = requests_of(body)
    assert body["id"] == body["requests"][0] and body["status"] == "pending"
    assert body["response"] is None
    assert (refund.bundle_id, email.bundle_id) == (refund.public_id, refund.public_id)
    assert (refund.bundle_index, email.bundle_index) == (0, 1)
    assert refund.proposed_action == {"name": "issue_refund", "args": REFUND["args"]}
    assert refund.title == "issue_refund(order=1042, amount=120)"
    assert refund.situation == "Refund?"
    assert refund.allowed_decisions == ["approve", "modify", "reject"]
    assert email.allowed_decisions == ["approve", "reject", "respond"]


def test_the_actions_of_one_interrupt_go_to_one_reviewer_with_one_deadline(
    api, refunds, alice, carol
):
    refund, email = requests_of(post(api, HITL_REQUEST))
    assert refund.assignee == email.assignee is not None
    assert refund.deadline == email.deadline


def test_a_hitl_request_is_answered_once_every_action_is_decided_in_order(api, refunds, alice):
    body = post(api, HITL_REQUEST)
    refund, email = requests_of(body)
    decide(email.pk, alice, "rejected", reason="Not yet.")
    assert answer(api, body)["response"] is None  # the refund is still pending
    edited = {"name": "issue_refund", "args": {"order": 1042, "amount": 60}}
    decide(refund.pk, alice, "modified", final_action=edited)
    got = answer(api, body)
    assert got["status"] == "decided"
    assert got["response"] == {
        "decisions": [
            {"type": "edit", "edited_action": edited},
            {"type": "reject", "message": "Not yet."},
        ]
    }


def test_the_answer_s_shape_is_the_interrupt_s_not_an_attribute_an_agent_can_set(
    api, refunds, alice
):
    """The shape is kept beside the request, not in its attributes: the rules and the
    reviewer's key data never see it, and an agent's attributes cannot change the answer."""
    body = post(api, {**TOOL_APPROVAL, "attributes": {"interrupt_form": "hitl_request"}})
    (request,) = requests_of(body)
    assert request.interrupt_form == "tool_approval"
    assert request.attributes["interrupt_form"] == "hitl_request"
    decide(request.pk, alice, "approved")
    assert answer(api, body)["response"] == {"type": "approve"}
    legacy = requests_of(post(api, HUMAN_INTERRUPT))[0]
    assert legacy.interrupt_form == "human_interrupt"
    assert not {"interrupt_form", "interrupt_config"} & set(legacy.attributes)


def test_the_rules_read_a_tool_call_s_arguments(api, refunds):
    """A rule on `amount` sees the tool's own argument, with no attributes sent; an attribute
    the agent sends wins, and long text stays content."""
    big = {**REFUND, "args": {"order": 1042, "amount": 900, "note": "x" * 201}}
    small = {**EMAIL, "args": {"to": "ana@example.com", "amount": 5}}
    body = post(api, {**HITL_REQUEST, "action_requests": [big, small], "attributes": {}})
    refund, email = requests_of(body)
    assert refund.attributes["amount"] == 900 and "note" not in refund.attributes
    assert email.attributes["amount"] == 5 and email.attributes["to"] == "ana@example.com"
    sent = post(api, {**TOOL_APPROVAL, "attributes": {"amount": 1}})
    assert requests_of(sent)[0].attributes["amount"] == 1
    # Any door: what the OpenAI Agents and Pydantic AI adapters send to /requests.
    call = {"tool": "issue_refund", "args": {"order": 7, "amount": 950}}
    body = {"category": "refunds", "title": "Refund", "proposed_action": call}
    response = api.post_json("/api/v1/requests", body)
    assert response.status_code == 201
    assert "amount is missing" not in response.content.decode()
    assert ReviewRequest.objects.get(public_id=response.json()["id"]).attributes["amount"] == 950


def test_two_tools_of_one_turn_are_not_each_other_s_precedents(api, refunds):
    """Alike in everything but the tool: a refund is no precedent for an email."""
    same_args = [{**REFUND, "args": {"order": 1}}, {**EMAIL, "args": {"order": 1}}]
    turn = {**HITL_REQUEST, "action_requests": same_args}
    refund, email = requests_of(post(api, turn))
    assert refund.precedent_key != email.precedent_key
    again, _ = requests_of(post(api, {**turn, "idempotency_key": "2"}))
    assert again.precedent_key == refund.precedent_key


def test_a_question_is_nobody_s_precedent(api, refunds):
    """An ask-the-user tool answered is not a rejected proposal alike to later refunds."""
    ask = {**TOOL_APPROVAL, "name": "ask_user", "args": {}, "allowed_decisions": ["respond"]}
    (question,) = requests_of(post(api, ask))
    assert question.precedent_key == ""
    alike = {**TOOL_APPROVAL, "tool_call_id": "call_8", "args": {}}
    (refund,) = requests_of(post(api, alike))
    assert refund.precedent_key != ""


def test_an_approval_and_an_answer_in_the_tools_place(api, refunds, alice):
    body = post(api, HITL_REQUEST)
    refund, email = requests_of(body)
    decide(refund.pk, alice, "approved")
    decide(email.pk, alice, "rejected", responded=True, reason="Sent it myself.")
    assert answer(api, body)["response"] == {
        "decisions": [{"type": "approve"}, {"type": "respond", "message": "Sent it myself."}]
    }


def test_a_decision_inside_the_undo_window_is_not_yet_an_answer(api, refunds, alice):
    body = post(api, {**HITL_REQUEST, "action_requests": [REFUND], "review_configs": [
        HITL_REQUEST["review_configs"][0]
    ]})  # fmt: skip
    (refund,) = requests_of(body)
    decide(refund.pk, alice, "approved", effective=False)
    assert answer(api, body)["response"] is None
    Decision.objects.filter(request=refund).update(effective_at=timezone.now())
    assert answer(api, body)["response"] == {"decisions": [{"type": "approve"}]}


def test_the_deadline_rejects_with_a_message_saying_so(api, refunds):
    Category.objects.filter(pk=refunds.pk).update(timeout_action="reject")
    body = post(api, HITL_REQUEST)
    ReviewRequest.objects.update(deadline=timezone.now() - timedelta(seconds=1))
    for request in requests_of(body):
        assert time_out_request(request.pk) == "timed_out.rejected"
    decisions = answer(api, body)["response"]["decisions"]
    assert [d["type"] for d in decisions] == ["reject", "reject"]
    assert decisions[0]["message"].startswith("No one decided before the deadline.")


def test_a_cancelled_request_is_a_rejection_never_an_approval(api, refunds):
    body = post(api, TOOL_APPROVAL)
    api.post_json(f"/api/v1/requests/{body['id']}/cancel")
    got = answer(api, body)
    assert got["status"] == "cancelled"
    assert got["response"]["type"] == "reject"
    assert "withdrawn" in got["response"]["message"]


def test_a_retry_with_the_same_key_finds_the_same_interrupt(api, refunds):
    first = post(api, HITL_REQUEST, HTTP_IDEMPOTENCY_KEY="interrupt:abc")
    again = post(api, HITL_REQUEST, 200, HTTP_IDEMPOTENCY_KEY="interrupt:abc")
    assert again["requests"] == first["requests"]
    assert ReviewRequest.objects.count() == 2
    keys = [r.idempotency_key for r in requests_of(first)]
    assert keys == ["interrupt:abc", "interrupt:abc#1"]


def test_a_changed_retry_is_refused_and_writes_nothing(api, refunds):
    post(api, HITL_REQUEST, HTTP_IDEMPOTENCY_KEY="interrupt:abc")
    changed = {**HITL_REQUEST, "action_requests": [REFUND, {**EMAIL, "args": {"to": "x@y.z"}}]}
    post(api, changed, 409, HTTP_IDEMPOTENCY_KEY="interrupt:abc")
    assert ReviewRequest.objects.count() == 2


# --- LangChain ToolApprovalRequest (per_call) --------------------------------------------------


def test_a_tool_approval_is_one_request_answered_with_one_decision(api, refunds, alice):
    body = post(api, {**TOOL_APPROVAL, "allowed_decisions": ["approve", "reject"]})
    (request,) = requests_of(body)
    assert request.bundle_id is None and request.external_ref == "call_7"
    assert request.allowed_decisions == ["approve", "reject"]
    decide(request.pk, alice, "approved")
    assert answer(api, body)["response"] == {"type": "approve"}


def test_a_tool_approval_allows_approve_edit_reject_unless_told(api, refunds, alice):
    body = post(api, TOOL_APPROVAL)
    (request,) = requests_of(body)
    assert request.allowed_decisions == ["approve", "modify", "reject"]
    # The per-call answer may not switch tools: the edit keeps the tool's name.
    final = {"name": "another_tool", "args": {"order": 1042, "amount": 10}}
    decide(request.pk, alice, "modified", final_action=final)
    assert answer(api, body)["response"] == {
        "type": "edit",
        "edited_action": {"name": "issue_refund", "args": {"order": 1042, "amount": 10}},
    }


def test_an_ask_the_user_tool_is_answered_with_respond_even_when_withdrawn(api, refunds):
    body = post(api, {**TOOL_APPROVAL, "allowed_decisions": ["respond"]})
    api.post_json(f"/api/v1/requests/{body['id']}/cancel")
    assert answer(api, body)["response"]["type"] == "respond"


# --- LangGraph HumanInterrupt and [HumanInterrupt] ----------------------------------------------


def test_a_human_interrupt_keeps_its_answer_shape_and_gets_its_allowed_decisions(
    api, refunds, alice
):
    body = post(
        api, {**HUMAN_INTERRUPT, "config": {**HUMAN_INTERRUPT["config"], "allow_edit": False}}
    )
    (request,) = requests_of(body)
    assert request.allowed_decisions == ["approve", "reject", "respond"]
    decide(request.pk, alice, "approved")
    assert answer(api, body)["response"] == {"type": "accept", "args": None}


def test_a_list_of_one_human_interrupt_is_answered_with_a_list_of_one(api, refunds, alice):
    body = post(api, [HUMAN_INTERRUPT])
    (request,) = requests_of(body)
    assert request.proposed_action["action"] == "issue_refund"
    decide(request.pk, alice, "rejected", responded=True, reason="Photos first.")
    assert answer(api, body)["response"] == [{"type": "response", "args": "Photos first."}]


# --- bad shapes: a clear 422, nothing written ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**HITL_REQUEST, "action_requests": []}, "action_requests", "at least 1 item"),
        (
            {**HITL_REQUEST, "review_configs": HITL_REQUEST["review_configs"][:1]},
            "body",
            "review_configs has no entry for send_email",
        ),
        (
            {
                **HITL_REQUEST,
                "review_configs": [
                    {"action_name": "issue_refund", "allowed_decisions": ["approve", "maybe"]},
                    HITL_REQUEST["review_configs"][1],
                ],
            },
            "review_configs.0.allowed_decisions.1",
            "'approve', 'edit', 'reject' or 'respond'",
        ),
        (
            {
                **HITL_REQUEST,
                "review_configs": [{"action_name": "issue_refund", "allowed_decisions": []}],
            },
            "review_configs.0.allowed_decisions",
            "at least 1 item",
        ),
        ({**TOOL_APPROVAL, "allowed_decisions": ["accept"]}, "allowed_decisions.0", "'approve'"),
        ({"category": "refunds", "question": "Refund?"}, "body", "Not an interrupt this API knows"),
        ([HUMAN_INTERRUPT, HUMAN_INTERRUPT], "body", "at most 1 item"),
        ([], "body", "at least 1 item"),
        ({**HITL_REQUEST, "category": "nope"}, "category", "Unknown category"),
    ],
)
def test_a_bad_interrupt_is_refused_with_a_clear_message(api, refunds, body, field, message):
    got = post(api, body, 422)
    assert got["error"] == "invalid"
    assert field in got["fields"], got["fields"]
    assert any(message in text for text in got["fields"][field]), got["fields"]
    assert not ReviewRequest.objects.exists() and not AuditEvent.objects.exists()


def test_another_agents_interrupt_does_not_exist(api, refunds):
    body = post(api, HITL_REQUEST)
    other = Agent.objects.create(name="other-bot")
    _, token = AgentToken.issue(other)
    assert AgentClient(token).get(body["answer_url"]).status_code == 404
