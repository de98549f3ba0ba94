"""Periodic review: sample human-free decisions (auto-approved by the rules, or taken by an
autonomous category) into per-category, per-day batches at the category's sample rate.

The draw is a hash of the request's public id, so re-reading a decision never changes whether
it was sampled: runs are idempotent, and the rate holds over any stretch of traffic.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from .models import Category, Decision, PeriodicReviewBatch, PeriodicReviewItem, RollupCursor
from .rollups import local_day

CURSOR = "sampling"
BATCH_SIZE = 2000


def is_sampled(public_id: UUID, rate: float, salt: str = "") -> bool:
    """A draw in [0, 1) from the request's id: 1.0 always samples, 0 never. A `salt` makes an
    independent draw (second reviews are not tied to periodic review's sample)."""
    draw = int(hashlib.sha256(f"{salt}{public_id}".encode()).hexdigest()[:12], 16) / 16**12
    return draw < rate


def sample(max_batches: int = 100) -> int:
    """Read new human-free decisions in bounded batches; returns how many were sampled."""
    sampled = 0
    rates = dict(Category.objects.values_list("pk", "sample_rate"))
    for _ in range(max_batches):
        with transaction.atomic():
            RollupCursor.objects.get_or_create(name=CURSOR)
            # One sampler at a time; a second waits, then finds the cursor moved on.
            cursor = RollupCursor.objects.select_for_update().get(name=CURSOR)
            rows = list(
                Decision.objects.filter(pk__gt=cursor.last_id)
                .order_by("pk")
                .values_list(
                    "pk", "channel", "created_at", "request_id", "request__public_id",
                    "request__category_id",
                )[:BATCH_SIZE]
            )  # fmt: skip
            if not rows:
                break
            batches: dict[tuple[int, object], PeriodicReviewBatch] = {}
            items = []
            for _, channel, created_at, request_id, public_id, category_id in rows:
                if channel != Decision.Channel.AUTO:
                    continue
                if not is_sampled(public_id, rates.get(category_id, 0.0)):
                    continue
                day = local_day(created_at)
                batch = batches.get((category_id, day))
                if batch is None:
                    batch, _ = PeriodicReviewBatch.objects.get_or_create(
                        category_id=category_id, day=day
                    )
                    batches[(category_id, day)] = batch
                items.append(PeriodicReviewItem(batch=batch, request_id=request_id))
            PeriodicReviewItem.objects.bulk_create(items, ignore_conflicts=True)
            # A batch that was finished gets new work: open it again.
            PeriodicReviewBatch.objects.filter(
                pk__in=[b.pk for b in batches.values()], completed_at__isnull=False
            ).update(completed_at=None)
            sampled += len(items)
            cursor.last_id = rows[-1][0]
            cursor.last_run_at = timezone.now()
            cursor.save(update_fields=["last_id", "last_run_at"])
    return sampled
