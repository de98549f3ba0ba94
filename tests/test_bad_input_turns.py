"""Bad input around a conversation refused with a clear 4xx that writes nothing: an agent's
answer nobody asked for, to a settled request, empty, oversized or unstorable; a default answer
that would never be used; a reviewer answering a question with a choice it did not offer."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from reviews.models import ReviewerToken, ReviewRequest
from reviews.services.conversation import post_message
from reviews.services.decisions import cancel_request, decide_request

from .api_support import AgentClient, _no_rate_limit, api, escalated
from .bad_input import BAD_JSON_VALUES, NUL_TEXT, row_counts

__all__ = ["_no_rate_limit", "api"]

pytestmark = pytest.mark.django_db

CHOICES = [{"key": "R", "label": "Rotterdam"}, {"key": "H", "label": "Hamburg"}]


def waiting_on_agent(api, alice, **submission) -> ReviewRequest:
    created = api.post_json("/api/v1/requests", escalated(**submission)).json()
    request = ReviewRequest.objects.get(public_id=created["id"])
    post_message(request, author_kind="reviewer", author=alice, kind="question", body="Photos?")
    return request


def answer(api, request: ReviewRequest, body: str | None = None, raw: str | None = None):
    url = f"/api/v1/requests/{request.public_id}/messages"
    text = json.dumps({"kind": "answer", "body": body}) if raw is None else raw
    return api.post(url, text, content_type="application/json")


def refused(response, before: dict[str, int], status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert body["error"] and body["detail"]
    assert row_counts() == before
    return body


def test_an_answer_nobody_asked_for_is_a_409_that_writes_nothing(api, refunds):
    created = api.post_json("/api/v1/requests", escalated()).json()
    request = ReviewRequest.objects.get(public_id=created["id"])
    before = row_counts()
    body = refused(answer(api, request, "Here are the photos."), before, 409)
    assert body["error"] == "not_waiting_on_agent"
    request.refresh_from_db()
    assert (request.turn, request.rounds) == ("reviewer", 0)


@pytest.mark.parametrize("settle", ["decided", "cancelled"])
def test_an_answer_to_a_settled_request_is_a_409(api, refunds, alice, settle):
    request = waiting_on_agent(api, alice)
    if settle == "decided":
        decide_request(request.pk, by=alice, outcome="rejected", reason="No photos came.")
    else:
        cancel_request(request.pk, agent=request.agent, reason="Customer withdrew.")
    before = row_counts()
    body = refused(answer(api, request, "The photos."), before, 409)
    assert body["error"] == "not_pending"


@pytest.mark.parametrize(
    ("what", "body"),
    [("empty", ""), ("blank", "  \n "), ("oversized", "x" * 20_001)],
)
def test_an_empty_or_oversized_answer_is_a_422_and_the_agent_keeps_the_turn(
    api, refunds, alice, what, body
):
    request = waiting_on_agent(api, alice)
    before = row_counts()
    response = refused(answer(api, request, body), before, 422)
    assert "body" in response["fields"], what
    request.refresh_from_db()
    assert request.turn == "agent"


@pytest.mark.parametrize("name", ["NUL in text", "lone high surrogate", "lone low surrogate"])
def test_an_answer_that_cannot_be_stored_is_a_422_and_the_agent_keeps_the_turn(
    api, refunds, alice, name
):
    request = waiting_on_agent(api, alice)
    before = row_counts()
    raw = '{"kind": "answer", "body": ' + BAD_JSON_VALUES[name] + "}"
    assert "body" in refused(answer(api, request, raw=raw), before, 422)["fields"]
    request.refresh_from_db()
    assert request.turn == "agent"


def test_a_default_answer_on_a_request_that_is_not_a_question_is_a_422(api, refunds):
    before = row_counts()
    for allowed in (None, ["respond", "reject"]):
        submission = escalated(default_answer="Rotterdam.")
        if allowed:
            submission["allowed_decisions"] = allowed
        response = api.post_json("/api/v1/requests", submission)
        body = refused(response, before, 422)
        assert "for a question" in body["fields"]["default_answer"][0]


def test_a_question_takes_a_default_answer(api, refunds):
    response = api.post_json(
        "/api/v1/requests",
        escalated(allowed_decisions=["respond"], default_answer="Rotterdam."),
    )
    assert response.status_code == 201
    assert ReviewRequest.objects.get(public_id=response.json()["id"]).default_answer == (
        "Rotterdam."
    )


def question(api) -> ReviewRequest:
    created = api.post_json(
        "/api/v1/requests",
        escalated(
            title="Which warehouse?",
            allowed_decisions=["respond"],
            options=CHOICES,
            recommended_option="R",
        ),
    ).json()
    return ReviewRequest.objects.get(public_id=created["id"])


def test_an_inbox_answer_with_a_choice_not_offered_is_refused_with_a_message(
    api, refunds, client, alice
):
    request = question(api)
    client.force_login(alice)
    before = row_counts()
    response = client.post(
        reverse("inbox_decide", args=[request.pk]),
        {"outcome": "respond", "option": "Z", "reason": "Zurich", "version": 1},
    )
    assert response.status_code == 422
    assert "&#x27;Z&#x27; is not an option." in response.content.decode()
    assert row_counts() == before


def test_an_inbox_answer_with_a_nul_is_refused_with_a_message(api, refunds, client, alice):
    request = question(api)
    client.force_login(alice)
    before = row_counts()
    response = client.post(
        reverse("inbox_decide", args=[request.pk]),
        {"outcome": "respond", "option": "R", "reason": NUL_TEXT, "version": 1},
    )
    assert 400 <= response.status_code < 500
    assert row_counts() == before


def test_a_reviewer_api_answer_with_a_choice_not_offered_is_a_422(api, refunds, alice):
    request = question(api)
    reviewer = AgentClient(ReviewerToken.issue(alice, "tool")[1])
    before = row_counts()
    response = reviewer.post_json(
        f"/api/v1/reviewer/requests/{request.public_id}/decision",
        {"decision": "respond", "version": 1, "option": "Z", "reason": "Zurich"},
    )
    body = refused(response, before, 422)
    assert "'Z' is not an option." in json.dumps(body)
