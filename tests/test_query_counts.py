"""How many statements each page and action takes: the same with 2 rows as with 30 (pending
requests, listed rows, a batch's size, second reviews, periodic batches, categories,
messages), and never more than a fixed number. A page whose count grows with its rows reads
them one by one, which a large backlog turns into seconds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reviews.models import (
    Category,
    Decision,
    PeriodicReviewBatch,
    PeriodicReviewItem,
    RequestSighting,
    ReviewRequest,
    SecondReview,
)
from reviews.services.conversation import post_message
from reviews.services.deadlines import time_out_batch
from reviews.services.decisions import decide_request

from .api_support import AgentClient, _no_rate_limit, escalated
from .test_inbox_views import HX, make_pending, submit

__all__ = ["_no_rate_limit"]

pytestmark = pytest.mark.django_db

FEW, MANY = 2, 30


def first_opening() -> int:
    """Statements that record a reviewer's first opening of an item: its two writes are one
    statement on PostgreSQL (services.sightings)."""
    return 1 if connection.vendor == "postgresql" else 2


def statements(call: Callable[[], object]) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = call()
    assert response.status_code in (200, 201, 302), (response.status_code, response.content)
    return len(ctx)


def assert_constant(few: int, many: int, most: int) -> None:
    """The same count with FEW and MANY rows, and at most `most`."""
    assert (few, many) == (few, few), f"{few} statements with {FEW} rows, {many} with {MANY}"
    assert few <= most, f"{few} statements, more than {most}"


@pytest.fixture
def reviewer(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def first(agent, refunds, carol):
    """A pending request with a precedent and a message: what an item shows, all present."""
    decide_request(submit(agent, refunds).pk, by=carol, outcome="approved")
    request = submit(agent, refunds)
    post_message(request, author_kind="agent", agent=agent, body="Hello")
    return request


def backlog_of(first: ReviewRequest, n: int) -> None:
    """`n` pending requests in all, alike (one group), in the reviewer's queue."""
    make_pending(first, n - ReviewRequest.objects.filter(status="pending").count())
    # Alike in every way the item reads: with the same precedents.
    ReviewRequest.objects.filter(precedent_key="").update(precedent_key=first.precedent_key)


# --- the inbox ------------------------------------------------------------------------------

INBOX_PAGES = {
    # name: (url, htmx, at most)
    # The full page also tells known-answer results decided elsewhere: one more statement.
    # A list's counts take off what waits on another reviewer (worklist.Hidden): one more.
    "inbox page": (lambda r: reverse("inbox"), False, 13),
    "list poll": (lambda r: reverse("inbox_poll") + f"?current={r.pk}", True, 12),
    "item partial": (lambda r: reverse("inbox_item", args=[r.pk]), True, 9),
    "item page": (lambda r: reverse("inbox_item", args=[r.pk]), False, 18),
    "group table": (lambda r: reverse("inbox_group", args=[r.group_key]), True, 6),
}


@pytest.mark.parametrize("name", INBOX_PAGES)
def test_inbox_pages_take_as_many_statements_for_2_or_30_pending(reviewer, first, name):
    url, htmx, most = INBOX_PAGES[name]
    extra = HX if htmx else {}
    backlog_of(first, FEW)
    reviewer.get(url(first), **extra)  # first sight and opening: written once, then read
    few = statements(lambda: reviewer.get(url(first), **extra))
    backlog_of(first, MANY)
    reviewer.get(url(first), **extra)
    many = statements(lambda: reviewer.get(url(first), **extra))
    assert_constant(few, many, most)


def decide_top(client, rows: int, first: ReviewRequest) -> int:
    backlog_of(first, rows)
    target = ReviewRequest.objects.filter(status="pending").exclude(pk=first.pk).first()
    data = {"version": target.proposal_version, "outcome": "approve"}
    # The next item is one the reviewer has not opened yet, as when working down the list.
    RequestSighting.objects.all().delete()
    ReviewRequest.objects.update(first_viewed_at=None)
    return statements(lambda: client.post(reverse("inbox_decide", args=[target.pk]), data, **HX))


def test_deciding_and_loading_the_next_item_is_constant(reviewer, first):
    decide_top(reviewer, FEW + 1, first)  # the first decision of the day writes more once
    few = decide_top(reviewer, FEW + 1, first)
    many = decide_top(reviewer, MANY + 1, first)
    assert_constant(few, many, 18 + first_opening())


def test_undo_is_constant(reviewer, first, alice):
    counts = []
    for rows in (FEW, MANY):
        backlog_of(first, rows)
        target = ReviewRequest.objects.filter(status="pending").exclude(pk=first.pk).first()
        decide_request(target.pk, by=alice, outcome="approved")
        url = reverse("inbox_undo", args=[target.pk])
        counts.append(statements(lambda url=url: reviewer.post(url, **HX)))
    assert_constant(*counts, 21 + first_opening())


def test_a_batch_takes_as_many_statements_for_2_or_30_requests(reviewer, first):
    counts = []
    for size in (FEW, MANY):
        backlog_of(first, size + 1)
        rows = ReviewRequest.objects.filter(status="pending").exclude(pk=first.pk)[:size]
        ids = ",".join(f"{r.pk}:{r.proposal_version}" for r in rows)
        data = {"outcome": "approve", "ids": ids}
        counts.append(
            statements(lambda data=data: reviewer.post(reverse("inbox_batch"), data, **HX))
        )
        assert Decision.objects.filter(batch_id__isnull=False).count() == sum(
            (FEW, MANY)[: len(counts)]
        )
    assert_constant(*counts, 11)


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_the_timeout_sweep_decides_2_or_30_overdue_requests_in_as_many_statements(
    agent, refunds, action
):
    refunds.timeout_action = action
    refunds.save()
    counts = []
    for size in (FEW, MANY):
        ids = [submit(agent, refunds).pk for _ in range(size)]
        due = timezone.now() - timedelta(minutes=1)
        ReviewRequest.objects.filter(pk__in=ids).update(deadline=due)
        with CaptureQueriesContext(connection) as ctx:
            done = time_out_batch(timezone.now(), limit=1000)
        assert done["claimed"] == size
        assert Decision.objects.filter(request_id__in=ids, channel="timeout").count() == size
        counts.append(len(ctx))
    assert_constant(*counts, 16)


def test_the_second_review_tab_is_constant(client, agent, refunds, alice, carol):
    refunds.second_review_rate = 1
    refunds.save()
    client.force_login(carol)
    counts = []
    for rows in (FEW, MANY):
        while SecondReview.objects.count() < rows:
            decide_request(submit(agent, refunds).pk, by=alice, outcome="approved")
        SecondReview.objects.update(visible_from=timezone.now() - timedelta(minutes=1))
        url = reverse("inbox") + "?tab=second"
        client.get(url)
        counts.append(statements(lambda url=url: client.get(url)))
        assert client.get(url).content.decode().count('class="row') >= rows
    assert_constant(*counts, 10)  # with known-answer results, and the counts' Hidden


def test_the_periodic_review_tab_is_constant(reviewer, first, refunds):
    counts = []
    for rows in (FEW, MANY):
        for day in range(PeriodicReviewBatch.objects.count(), rows):
            batch = PeriodicReviewBatch.objects.create(
                category=refunds, day=date(2026, 1, 1) + timedelta(days=day)
            )
            done = submit(first.agent, refunds)
            ReviewRequest.objects.filter(pk=done.pk).update(status="auto_approved")
            PeriodicReviewItem.objects.create(batch=batch, request=done)
        url = reverse("inbox") + "?tab=periodic"
        counts.append(statements(lambda url=url: reviewer.get(url)))
    assert_constant(*counts, 10)  # with known-answer results, and the counts' Hidden


# --- managers' and admins' pages --------------------------------------------------------------

MANAGER_PAGES = {  # name: at most
    "metrics": 9,  # + the period's reversals, counted at read time
    "metrics_calibration": 6,
    "metrics_advice": 8,
    "metrics_patterns": 8,  # + what periodic review flags
    "metrics_reviewers": 8,  # with the known-answer catch counts
    "metrics_autonomy": 13,  # + the month's volume, the costs of errors or actions, flags
    "metrics_agreement": 10,  # + the four-eyes pairs
    "audit": 5,
}


def decided_requests(first: ReviewRequest, n: int, by) -> None:
    while Decision.objects.count() < n:
        decide_request(submit(first.agent, first.category).pk, by=by, outcome="approved")


@pytest.mark.parametrize("name", MANAGER_PAGES)
def test_metrics_pages_are_constant(client, manager, first, carol, name):
    client.force_login(manager)
    # Costed errors, so the autonomy page reads their amounts (a query, whatever their number).
    Category.objects.filter(pk=first.category_id).update(
        cost_kind="attribute", cost_attribute="amount"
    )
    counts = []
    for rows in (FEW, MANY):
        decided_requests(first, rows, carol)
        counts.append(statements(lambda: client.get(reverse(name))))
    assert_constant(*counts, MANAGER_PAGES[name])


def categories(n: int, queue) -> None:
    for i in range(Category.objects.count(), n):
        Category.objects.create(slug=f"c{i}", name=f"Category {i}", queue=queue)


POLICIES_PAGES = {"policies": 5, "queues": 9, "agents": 5}


@pytest.mark.parametrize("name", POLICIES_PAGES)
def test_policies_pages_are_constant(admin_client, first, support_queue, name):
    counts = []
    for rows in (FEW, MANY):
        categories(rows, support_queue)
        counts.append(statements(lambda: admin_client.get(reverse(name))))
    assert_constant(*counts, POLICIES_PAGES[name])


def test_the_policy_editor_is_constant(admin_client, first, refunds, support_queue):
    counts = []
    url = reverse("policy_edit", args=[refunds.slug])
    for rows in (FEW, MANY):
        categories(rows, support_queue)
        counts.append(statements(lambda: admin_client.get(url)))
    # + the month's volume for the damage at stake, + the numeric attributes it suggests
    assert_constant(*counts, 17)


# --- the agent API --------------------------------------------------------------------------


@pytest.fixture
def api(agent_token) -> AgentClient:
    return AgentClient(agent_token)


def test_submitting_is_constant(api, first):
    counts = []
    for rows in (FEW, MANY):
        backlog_of(first, rows)
        api.post_json("/api/v1/requests", escalated())  # the agent's first call writes more
        counts.append(statements(lambda: api.post_json("/api/v1/requests", escalated())))
    assert_constant(*counts, 8)


def test_reading_a_request_and_its_messages_is_constant(api, first, alice):
    created = api.post_json("/api/v1/requests", escalated()).json()
    request = ReviewRequest.objects.get(public_id=created["id"])
    counts = {"get": [], "messages": []}
    for rows in (FEW, MANY):
        while request.messages.count() < rows:
            post_message(request, author_kind="reviewer", author=alice, body="A question?")
        for name, url in (
            ("get", f"/api/v1/requests/{created['id']}"),
            ("messages", f"/api/v1/requests/{created['id']}/messages"),
        ):
            api.get(url)
            counts[name].append(statements(lambda url=url: api.get(url)))
    assert_constant(*counts["get"], 3)
    assert_constant(*counts["messages"], 3)


def test_listing_categories_is_constant(api, first, support_queue):
    counts = []
    for rows in (FEW, MANY):
        categories(rows, support_queue)
        api.get("/api/v1/categories")
        counts.append(statements(lambda: api.get("/api/v1/categories")))
    assert_constant(*counts, 4)
