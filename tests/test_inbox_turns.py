"""Whose turn the inbox shows: a request waiting on its agent sits below the reviewer's own
work and is never the next item; it says since when it waits and what the answer timeout does;
once the agent answers or revises, it is back with the answer and the change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews.models import Message, ReviewRequest
from reviews.services.conversation import post_message, revise_proposal
from reviews.services.turns import time_out_turns

from .test_inbox_views import HX, as_user, submit

pytestmark = pytest.mark.django_db


def ask(request, alice, body="Did the customer send photos?", kind="question"):
    return post_message(request, author_kind="reviewer", author=alice, kind=kind, body=body)


def answer(request, agent, body="Yes, two of them."):
    return post_message(request, author_kind="agent", agent=agent, kind="answer", body=body)


@pytest.fixture
def three(agent, refunds, alice):
    """Urgent, high and normal, all assigned to alice: the urgent one is asked about."""
    reqs = [submit(agent, refunds, title=f"Refund {n}", priority=3 - n) for n in range(3)]
    ReviewRequest.objects.update(assignee=alice)
    return reqs


def listed(client) -> list[int]:
    return [r.pk for r in client.get(reverse("inbox"), **HX).context["rows"]]


def test_a_request_waiting_on_the_agent_goes_below_the_reviewers_own_work(client, alice, three):
    urgent, high, normal = three
    ask(urgent, alice)
    as_user(client, alice)
    assert listed(client) == [high.pk, normal.pk, urgent.pk]
    page = client.get(reverse("inbox")).content.decode()
    since = timezone.localtime(ReviewRequest.objects.get(pk=urgent.pk).turn_since)
    assert "Waiting on agent since <time datetime=" in page
    assert f">{since:%H:%M}</time>" in page
    assert "Waiting on the agent" in page and "deadline paused" in page


def test_with_more_pending_than_a_page_the_waiting_ones_still_come_last(
    client, alice, three, monkeypatch
):
    urgent, high, normal = three
    ask(urgent, alice)
    monkeypatch.setattr("reviews.views.inbox.LIST_SIZE", 2)
    assert listed(as_user(client, alice)) == [high.pk, normal.pk]


def test_the_next_item_after_a_decision_skips_the_one_waiting_on_the_agent(client, alice, three):
    urgent, high, normal = three
    ask(high, alice)
    as_user(client, alice)
    data = {"version": 1, "outcome": "approve", "next": str(high.pk)}  # the row below it
    response = client.post(reverse("inbox_decide", args=[urgent.pk]), data, **HX)
    assert response.context["req"].pk == normal.pk
    data = {"version": 1, "outcome": "approve"}
    response = client.post(reverse("inbox_decide", args=[normal.pk]), data, **HX)
    assert response.context["req"] is None  # only the waiting one is left: nothing to open
    assert ReviewRequest.objects.get(pk=high.pk).status == "pending"


def test_asking_from_the_reply_box_shows_the_item_waiting_on_the_agent(client, alice, three):
    urgent = three[0]
    response = as_user(client, alice).post(
        reverse("inbox_reply", args=[urgent.pk]),
        {"kind": "instructions", "body": "Offer a voucher instead."},
        **HX,
    )
    assert response.status_code == 200
    assert "inbox:refresh" in response.headers["HX-Trigger"]  # the list moves it down
    page = response.content.decode()
    assert "Waiting on agent since" in page
    assert "Your instructions:" in page and "Offer a voucher instead." in page
    assert "If the agent does not answer within 1 hour, it comes back marked unanswered." in page
    assert "Paused" in page
    assert ReviewRequest.objects.get(pk=urgent.pk).turn == "agent"


def test_a_plain_reply_leaves_the_request_with_the_reviewer(client, alice, three):
    urgent = three[0]
    response = as_user(client, alice).post(
        reverse("inbox_reply", args=[urgent.pk]), {"kind": "comment", "body": "Noted."}, **HX
    )
    assert "Waiting on agent" not in response.content.decode()
    assert ReviewRequest.objects.get(pk=urgent.pk).turn == "reviewer"


def test_the_item_states_a_rejecting_answer_timeout(client, alice, three, refunds):
    refunds.answer_timeout_seconds = 1800
    refunds.answer_timeout_action = "reject"
    refunds.save()
    ask(three[0], alice)
    page = as_user(client, alice).get(reverse("inbox_item", args=[three[0].pk])).content
    assert b"If the agent does not answer within 30 minutes, the request is rejected." in page


def test_an_answer_and_a_revision_bring_it_back_with_both_shown(client, alice, agent, three):
    urgent, high, normal = three
    ask(urgent, alice)
    answer(urgent, agent, body="Yes, <b>two</b> of them.")
    revise_proposal(
        urgent.pk,
        agent=agent,
        proposed_action={"action": "refund", "amount": 80, "currency": "EUR"},
    )
    as_user(client, alice)
    assert listed(client) == [urgent.pk, high.pk, normal.pk]
    assert "Agent answered and revised" in client.get(reverse("inbox")).content.decode()
    page = client.get(reverse("inbox_item", args=[urgent.pk]), **HX).content.decode()
    assert "Yes, &lt;b&gt;two&lt;/b&gt; of them." in page  # the agent's text, escaped
    assert "from version 1, the one you saw, to version 2" in page
    assert "<del>120</del>" in page and "<ins>80</ins>" in page
    # The key data are the submission's, and the page says so beside the revised action.
    assert "As the agent submitted them with version 1" in page


def test_a_revision_sent_with_words_is_the_agents_answer_too(client, alice, agent, three):
    urgent = three[0]
    ask(urgent, alice)
    revise_proposal(
        urgent.pk,
        agent=agent,
        proposed_action={"action": "refund", "amount": 80, "currency": "EUR"},
        body="No photos yet: 80 now, the rest when they come.",
    )
    as_user(client, alice)
    assert "Agent answered and revised" in client.get(reverse("inbox")).content.decode()
    page = client.get(reverse("inbox_item", args=[urgent.pk]), **HX).content.decode()
    assert "No photos yet: 80 now, the rest when they come." in page


def test_an_unanswered_question_comes_back_marked_so(client, alice, three):
    urgent = three[0]
    ask(urgent, alice)
    time_out_turns(now=timezone.now() + timedelta(hours=2))
    as_user(client, alice)
    assert "No answer from agent" in client.get(reverse("inbox")).content.decode()
    page = client.get(reverse("inbox_item", args=[urgent.pk]), **HX).content.decode()
    assert "The agent did not answer in time" in page


def test_the_poll_says_when_the_open_item_came_back(client, alice, agent, three):
    urgent = three[0]
    ask(urgent, alice)
    as_user(client, alice)
    url = reverse("inbox_poll")
    query = {"current": urgent.pk, "current_version": 1, "current_turn": "agent"}
    assert b"data-returned" not in client.get(url, query, **HX).content
    answer(urgent, agent, body="They did.")
    page = client.get(url, query, **HX).content.decode()
    assert "data-returned" in page and "Agent answered." in page and "They did." in page
    assert Message.objects.filter(request=urgent, kind="answer").count() == 1
