"""Thousands of requests with known outcomes, written in bulk for the metrics tests.

The services make one request in milliseconds; readiness and escalation-rate tests need
thousands, so these rows are inserted directly, as bench/metrics.py does, with the fields the
services would set. Rollups are then built by the real job (reviews.rollups)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from reviews import rules as engine
from reviews.models import (
    Decision,
    PeriodicReviewBatch,
    PeriodicReviewItem,
    ReviewRequest,
)

# kind: right (approved as proposed), wrong (modified), rejected, timeout, auto (no rule
# fired), pending (escalated, waiting)
KINDS = {"right", "wrong", "rejected", "timeout", "auto", "pending"}


def bulk(
    agent,
    category,
    kinds: Iterable[str],
    *,
    at: datetime,
    by=None,
    confidences: Iterable[float | None] | None = None,
) -> list[ReviewRequest]:
    """One request per kind, submitted and decided at `at`."""
    kinds = list(kinds)
    assert set(kinds) <= KINDS, set(kinds) - KINDS
    confidences = list(confidences) if confidences is not None else [0.9] * len(kinds)
    requests = ReviewRequest.objects.bulk_create(
        [
            ReviewRequest(
                agent=agent,
                category=category,
                title=f"Known {kind} {i}",
                proposed_action={"action": "refund", "amount": 100},
                confidence=confidence,
                verdict=engine.AUTONOMOUS if kind == "auto" else engine.ESCALATE,
                status={
                    "right": "approved",
                    "wrong": "modified",
                    "rejected": "rejected",
                    "timeout": "rejected",
                    "auto": "auto_approved",
                    "pending": "pending",
                }[kind],
                queue=None if kind == "auto" else category.queue,
                created_at=at,
                decided_at=None if kind == "pending" else at,
            )
            for i, (kind, confidence) in enumerate(zip(kinds, confidences, strict=True))
        ],
        batch_size=1000,
    )
    decisions = []
    for request, kind in zip(requests, kinds, strict=True):
        if kind == "pending":
            continue
        people = kind in ("right", "wrong", "rejected")
        decisions.append(
            Decision(
                request=request,
                decided_by=by if people else None,
                outcome={
                    "right": "approved",
                    "wrong": "modified",
                    "rejected": "rejected",
                    "timeout": "rejected",
                    "auto": "approved",
                }[kind],
                final_action={"action": "refund", "amount": 50} if kind == "wrong" else None,
                channel={"timeout": "timeout", "auto": "auto"}.get(kind, "web"),
                review_seconds=20.0 if people else None,
                created_at=at,
                effective_at=at,
                as_proposed=kind in ("right", "auto"),
            )
        )
    Decision.objects.bulk_create(decisions, batch_size=1000)
    return requests


def periodic_reviews(agent, category, *, correct: int, incorrect: int = 0, at: datetime) -> None:
    """Rule auto-approvals submitted at `at`, sampled, and marked by a reviewer."""
    requests = bulk(agent, category, ["auto"] * (correct + incorrect), at=at)
    batch, _ = PeriodicReviewBatch.objects.get_or_create(category=category, day=at.date())
    PeriodicReviewItem.objects.bulk_create(
        [
            PeriodicReviewItem(
                batch=batch,
                request=request,
                verdict="correct" if i < correct else "incorrect",
                correction="" if i < correct else "Should have been store credit",
                reviewed_at=at,
            )
            for i, request in enumerate(requests)
        ],
        batch_size=1000,
    )
