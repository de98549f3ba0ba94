"""The tool calls of one agent turn (one LangChain interrupt) read as one piece of work in the
inbox: one reviewer, listed together in order, each item saying where it stands among them."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from reviews.access import reviewer_queue_ids
from reviews.services.interrupts import InterruptAction, submit_interrupt
from reviews.worklist import Filters, inbox_rows, pending

pytestmark = pytest.mark.django_db


def turn(agent, category, names=("refund", "email", "close_ticket")):
    actions = [
        InterruptAction(
            title=f"{name}(order=1042)",
            proposed_action={"name": name, "args": {"order": 1042}},
            allowed_decisions=["approve", "modify", "reject"],
        )
        for name in names
    ]
    submissions = submit_interrupt(
        agent, category=category, form="hitl_request", actions=actions, confidence=0.4
    )
    return [s.request for s in submissions]


def test_the_calls_of_one_turn_go_to_one_reviewer_and_are_listed_together_in_order(
    agent, refunds, alice, carol
):
    # Two reviewers share the queue: the least loaded would take every other call.
    first, second, third = turn(agent, refunds)
    assert {r.assignee for r in (first, second, third)} == {first.assignee}
    other = turn(agent, refunds, names=("refund",))[0]
    rows = inbox_rows(
        first.assignee, pending(first.assignee, reviewer_queue_ids(first.assignee), Filters()), 50
    )
    pks = [r.pk for r in rows]
    at = pks.index(first.pk)
    assert pks[at : at + 3] == [first.pk, second.pk, third.pk]
    assert other.pk in pks


def test_the_item_page_says_which_call_of_the_turn_it_is_and_links_the_others(
    client, agent, refunds, alice
):
    first, second, third = turn(agent, refunds)
    client.force_login(alice)
    page = client.get(reverse("inbox_item", args=[second.pk])).content.decode()
    place = re.search(r'<p class="bundle-place[^"]*">(.*?)</p>', page, re.S).group(1)
    assert "Tool call 2 of 3 of one agent turn" in place
    links = re.findall(r'href="([^"]+)"', place)
    assert links == [reverse("inbox_item", args=[first.pk]), reverse("inbox_item", args=[third.pk])]


def test_a_request_alone_says_nothing_of_a_turn(client, agent, refunds, alice):
    (alone,) = turn(agent, refunds, names=("refund",))
    client.force_login(alice)
    page = client.get(reverse("inbox_item", args=[alone.pk])).content.decode()
    assert "bundle-place" not in page


def test_after_one_call_of_a_turn_the_next_item_is_its_first_call_still_pending(
    client, agent, refunds, alice
):
    """The agent waits for every call of the turn: deciding the second goes to the first,
    not to the row below, even when the page asked for that row."""
    first, second, third = turn(agent, refunds)
    client.force_login(first.assignee)
    url = reverse("inbox_decide", args=[second.pk])
    response = client.post(url, {"version": 1, "outcome": "approve", "next": str(third.pk)})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("inbox_item", args=[first.pk]))
    response = client.post(
        reverse("inbox_decide", args=[first.pk]), {"version": 1, "outcome": "approve"}
    )
    assert response["Location"].startswith(reverse("inbox_item", args=[third.pk]))
