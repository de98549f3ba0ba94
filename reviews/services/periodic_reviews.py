"""Periodic review: reviewers' verdicts on sampled decisions taken without a human, which feed
the autonomous category's sequential test."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..models import PeriodicReviewBatch, PeriodicReviewItem
from .audit import audit
from .autonomy import count_verdict
from .errors import TransitionError


def record_periodic_review(
    item_id: int,
    *,
    by: AbstractBaseUser,
    verdict: str,
    correction: str = "",
    now: datetime | None = None,
) -> Any:
    """A reviewer's verdict on one sampled human-free decision; it feeds the category's
    sequential test (reviews.monitoring), which may reinstate the gate."""
    if verdict not in (PeriodicReviewItem.Verdict.CORRECT, PeriodicReviewItem.Verdict.INCORRECT):
        raise ValidationError({"verdict": "Mark it correct or incorrect."})
    if verdict == PeriodicReviewItem.Verdict.INCORRECT and not correction.strip():
        raise ValidationError({"correction": "Say what should have been done instead."})
    now = now or timezone.now()
    with transaction.atomic():
        item = PeriodicReviewItem.objects.select_related("batch", "request").get(pk=item_id)
        # The claim: one verdict per item, even with two reviewers on the same batch.
        claimed = PeriodicReviewItem.objects.filter(pk=item_id, verdict="").update(
            verdict=verdict, correction=correction.strip(), reviewed_by=by, reviewed_at=now
        )
        if claimed != 1:
            raise TransitionError("Someone has already reviewed this one.")
        item.refresh_from_db()
        audit(
            f"periodic_review.{verdict}",
            item.request,
            by,
            after={"verdict": verdict, "correction": item.correction, "batch": item.batch_id},
            note=item.correction,
        )
        if not item.batch.items.filter(verdict="").exists():
            PeriodicReviewBatch.objects.filter(pk=item.batch_id, completed_at__isnull=True).update(
                completed_at=now
            )
        count_verdict(item, now=now)
    return item
