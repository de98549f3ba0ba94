"""Decisions with known outcomes for the metrics tests, made through the real services."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from reviews.models import ReviewRequest
from reviews.services.deadlines import time_out_request
from reviews.services.decisions import decide_request
from reviews.services.sightings import record_first_view
from reviews.services.submission import submit_request

from .conftest import ROUTINE


def decided(
    agent,
    category,
    outcome: str,
    *,
    by=None,
    at: datetime | None = None,
    confidence: float = 0.9,
    review_seconds: float = 30.0,
    attributes: dict[str, Any] | None = None,
    reason: str = "",
    final_action: dict[str, Any] | None = None,
) -> ReviewRequest:
    """A request submitted at `at` and decided `review_seconds` after a first view.

    outcome: approved, modified, rejected, timeout (by the sweep) or auto (no rule fired)."""
    at = at or timezone.now() - timedelta(hours=1)
    attrs = dict(attributes if attributes is not None else ROUTINE)
    if outcome != "auto" and category.mode == "rules" and confidence >= 0.7:
        attrs.setdefault("policy_conflict", True)  # make sure a person sees it
    request = submit_request(
        agent,
        category=category,
        title="Refund",
        confidence=confidence,
        attributes=attrs,
        proposed_action={"action": "refund", "amount": 100},
        now=at,
    ).request
    if outcome == "auto":
        assert request.status == "auto_approved", request.fired_rules
        return request
    assert request.status == "pending", request.attributes
    if outcome == "timeout":
        time_out_request(request.pk, now=request.deadline + timedelta(minutes=1))
        request.refresh_from_db()
        if request.status == "pending":  # reassigned / escalated: walk the policy to its end
            for _ in range(4):
                time_out_request(request.pk, now=request.deadline + timedelta(minutes=1))
                request.refresh_from_db()
        return request
    viewed = at + timedelta(seconds=60)
    if by is not None:
        record_first_view(request, by=by, now=viewed)
    kwargs: dict[str, Any] = {}
    if outcome == "modified":
        kwargs["final_action"] = final_action or {"action": "refund", "amount": 50}
    if outcome == "rejected":
        kwargs["reason"] = reason or "Outside the policy"
    elif reason:
        kwargs["reason"] = reason
    decide_request(
        request.pk,
        by=by,
        outcome=outcome,
        now=viewed + timedelta(seconds=review_seconds),
        **kwargs,
    )
    request.refresh_from_db()
    return request


def auto_approved(agent, category, count: int) -> list[ReviewRequest]:
    """`count` requests no rule escalates: decided by the rules, without a human."""
    return [
        submit_request(
            agent, category=category, title=f"Refund {i}", confidence=0.95, attributes=ROUTINE
        ).request
        for i in range(count)
    ]
