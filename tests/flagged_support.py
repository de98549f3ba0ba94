"""Worlds for the periodic-review pattern tests: auto-approved requests with verdicts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from reviews.models import Category, PeriodicReviewBatch, PeriodicReviewItem, ReviewRequest
from reviews.services.periodic_reviews import record_periodic_review

from .policies_helpers import make_request


def reviewed(
    agent,
    category: Category,
    by,
    verdict: str,
    *,
    amount: float,
    correction: str = "",
    title: str = "",
    age: timedelta = timedelta(days=3),
    **attributes: Any,
) -> ReviewRequest:
    """An auto-approved request sampled for periodic review and given `verdict` by `by`."""
    attrs = {"amount": amount, "customer_tier": "standard", **attributes}
    request = make_request(agent, category, attributes=attrs, age=age)
    if title:
        request.title = title
        request.save(update_fields=["title"])
    day = timezone.localdate(request.created_at)
    batch, _ = PeriodicReviewBatch.objects.get_or_create(category=category, day=day)
    item = PeriodicReviewItem.objects.create(batch=batch, request=request)
    if verdict == "incorrect" and not correction:
        correction = "Should have gone to a person"
    record_periodic_review(
        item.pk, by=by, verdict=verdict, correction=correction, now=request.created_at
    )
    return request


LARGE_REFUND = "A refund this large needs a person: ask for photos of the damage"


def amount_world(agent, category: Category, by) -> list[ReviewRequest]:
    """Four incorrect verdicts on refunds of 720 and more, six correct ones at 650 and below."""
    flagged = [
        reviewed(agent, category, by, "incorrect", amount=a, correction=c)
        for a, c in [
            (720, LARGE_REFUND),
            (850, LARGE_REFUND),
            (1300, LARGE_REFUND),
            (4000, "Offer store credit instead"),
        ]
    ]
    for amount in (50, 90, 120, 300, 410, 650):
        reviewed(agent, category, by, "correct", amount=amount)
    return flagged
