"""The item page grows linearly with what the agent sent: a submission at the API's size limit,
in any shape (nested to the depth limit, wide, long strings that escape to more), renders a
page of bounded size in bounded CPU time, and the Modify form still holds the whole action."""

from __future__ import annotations

import json
import time
from html import unescape
from typing import Any

import pytest
from django.urls import reverse

from reviews.api import MAX_BODY_BYTES
from reviews.models import ReviewRequest
from reviews.validation import MAX_JSON_DEPTH

from .api_support import AgentClient, _no_rate_limit, escalated
from .test_inbox_views import HX

__all__ = ["_no_rate_limit"]

pytestmark = pytest.mark.django_db

PAGE_LIMIT = 2 * 1024 * 1024
SECONDS_LIMIT = 2.0


def deep(leaf: Any, levels: int) -> Any:
    for n in range(levels):
        leaf = [leaf] if n % 2 else {"k": leaf}
    return leaf


def filled(make, budget: int) -> Any:
    """The largest make(n) whose submission stays within `budget` bytes."""

    def fits(n: int) -> bool:
        return len(json.dumps(escalated(proposed_action=make(n)))) <= budget

    low, high = 1, 2
    while fits(high):
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return make(low)


SHAPES = {
    # A wide list at the bottom of the deepest nesting allowed: indentation times width.
    "deep and wide": lambda n: {"a": deep([0] * n, MAX_JSON_DEPTH - 2)},
    "lists nested to the limit, many times": lambda n: {
        f"k{i}": deep(1, MAX_JSON_DEPTH - 1) for i in range(n)
    },
    "many keys": lambda n: {f"k{i}": i for i in range(n)},
    "wide list of objects": lambda n: {"lines": [{"sku": "a", "qty": 1}] * n},
    "long string that escapes": lambda n: {"note": "<'&\">" * n},
}


def submit_big(client: AgentClient, name: str, attributes_too: bool) -> tuple[ReviewRequest, int]:
    budget = MAX_BODY_BYTES // 2 if attributes_too else MAX_BODY_BYTES
    action = filled(SHAPES[name], budget - 200)
    body = escalated(proposed_action=action)
    if attributes_too:
        body["attributes"] = {**action, **body["attributes"]}
    text = json.dumps(body)
    assert len(text) <= MAX_BODY_BYTES
    response = client.post("/api/v1/requests", text, content_type="application/json")
    assert response.status_code == 201, response.content[:300]
    return ReviewRequest.objects.get(public_id=response.json()["id"]), len(text)


@pytest.mark.wall_clock
@pytest.mark.parametrize("attributes_too", [False, True], ids=["action", "action+attributes"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_a_submission_at_the_size_limit_renders_a_bounded_page_quickly(
    client, agent_token, refunds, alice, name, attributes_too
):
    review, size = submit_big(AgentClient(agent_token), name, attributes_too)
    assert size > MAX_BODY_BYTES * 0.9
    client.force_login(alice)
    for extra in ({}, HX):
        # CPU time of this process (the test client renders in it): other processes on a
        # shared machine do not count, a rendering that grows faster than its input does.
        started = time.process_time()
        response = client.get(reverse("inbox_item", args=[review.pk]), **extra)
        elapsed = time.process_time() - started
        assert response.status_code == 200
        assert len(response.content) < PAGE_LIMIT, (name, len(response.content))
        assert elapsed < SECONDS_LIMIT, (name, elapsed)


def test_the_modify_form_holds_the_whole_big_action_once_and_saves_it(
    client, agent_token, refunds, alice
):
    review, _ = submit_big(AgentClient(agent_token), "deep and wide", attributes_too=False)
    client.force_login(alice)
    page = client.get(reverse("inbox_item", args=[review.pk]), **HX).content.decode()
    start = page.index(">", page.index('id="modify-json"')) + 1
    text = page[start : page.index("</textarea>", start)]

    assert json.loads(unescape(text)) == review.proposed_action
    # The action is on the page once: besides it, only a preview and the page's own markup.
    assert len(page) < len(text) + 100_000
    final = json.loads(unescape(text))
    final["changed"] = True
    response = client.post(
        reverse("inbox_decide", args=[review.pk]),
        {
            "outcome": "modify",
            "version": review.proposal_version,
            "final_action": json.dumps(final),
        },
        **HX,
    )
    assert response.status_code == 200
    review.refresh_from_db()
    assert review.decision.final_action == final


def test_a_big_action_is_collapsed_to_a_preview_with_a_link_to_the_raw_json(
    client, agent_token, refunds, alice, bob
):
    review, _ = submit_big(AgentClient(agent_token), "many keys", attributes_too=True)
    client.force_login(alice)
    page = client.get(reverse("inbox_item", args=[review.pk]), **HX).content.decode()
    raw_url = reverse("inbox_item_raw", args=[review.pk])
    assert f'href="{raw_url}"' in page
    assert "the start shown" in page
    assert "more data points" in page
    raw = client.get(raw_url)
    assert raw.status_code == 200 and raw["Content-Type"] == "application/json"
    assert raw.json() == {
        "proposed_action": review.proposed_action,
        "attributes": review.attributes,
    }
    client.force_login(bob)  # another queue's reviewer
    assert client.get(raw_url).status_code == 404


def test_a_small_action_is_shown_whole_without_a_raw_link(client, agent_token, refunds, alice):
    response = AgentClient(agent_token).post_json("/api/v1/requests", escalated())
    review = ReviewRequest.objects.get(public_id=response.json()["id"])
    client.force_login(alice)
    page = client.get(reverse("inbox_item", args=[review.pk]), **HX).content.decode()
    assert "&quot;amount&quot;: 120" in page
    assert reverse("inbox_item_raw", args=[review.pk]) not in page


def test_the_audit_page_of_a_big_request_shows_it_whole_in_bounded_size(
    client, agent_token, refunds, admin_user
):
    review, _ = submit_big(AgentClient(agent_token), "deep and wide", attributes_too=False)
    client.force_login(admin_user)
    page = client.get(reverse("audit_request", args=[review.pk])).content.decode()
    assert len(page) < PAGE_LIMIT
    assert page.count("0, 0, 0") > 1000  # whole, not a preview
