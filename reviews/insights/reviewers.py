"""How each reviewer works: volume, review time, signs of rubber-stamping, and how often they
catch a known-answer check (services/known_answers.py)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.db.models import Count, Q

from ..models import (
    KnownAnswerCheck,
    ReviewerRollup,
)
from .periods import Period
from .stats import add_lists, percentile, share, wilson

# A reviewer who approves nearly everything this fast is probably not reading.
RUBBER_STAMP_SECONDS = 5.0


RUBBER_STAMP_APPROVE_SHARE = 0.97


REJECT_EVERYTHING_SHARE = 0.9


REVIEWER_MIN_DECISIONS = 20


@dataclass
class ReviewerStats:
    reviewer_id: int
    username: str
    decided: int
    approved: int
    modified: int
    rejected: int
    active_days: int
    review_hist: list[int]
    batched: int = 0
    unopened: int = 0
    # Known-answer checks they decided in the period, and how many they got right.
    checks: int = 0
    caught: int = 0

    @property
    def per_day(self) -> float:
        return self.decided / self.active_days if self.active_days else 0.0

    @property
    def p50(self) -> float | None:
        return percentile(self.review_hist, 0.5)

    @property
    def p90(self) -> float | None:
        return percentile(self.review_hist, 0.9)

    @property
    def batched_share(self) -> float | None:
        return share(self.batched, self.decided)

    @property
    def unopened_share(self) -> float | None:
        return share(self.unopened, self.decided)

    @property
    def flag(self) -> str:
        # Batch decisions are in review_hist (timed from the row's first sight on the
        # reviewer's screen), so approving a list seconds after it appeared flags like any
        # other fast approving.
        if self.decided < REVIEWER_MIN_DECISIONS:
            return ""
        p50 = self.p50
        if (
            self.approved / self.decided >= RUBBER_STAMP_APPROVE_SHARE
            and p50 is not None
            and p50 < RUBBER_STAMP_SECONDS
        ):
            return "rubber-stamping"
        if self.rejected / self.decided >= REJECT_EVERYTHING_SHARE:
            return "rejects everything"
        return ""

    @property
    def catch_rate(self) -> float | None:
        return share(self.caught, self.checks)

    @property
    def catch_bounds(self) -> tuple[float, float] | None:
        """The 95% Wilson interval of their catch rate, as readiness bounds accuracy."""
        return wilson(self.caught, self.checks) if self.checks else None

    @property
    def catch_flag(self) -> str:
        """Flagged once even the interval's upper bound is under HITL_KNOWN_ANSWER_CATCH_BAR:
        the data then says, with 95% confidence, that they catch fewer than the bar. A lower
        bound would flag everyone with few checks (one miss of two) for want of evidence,
        and a point rate would flag on a single slip."""
        bounds = self.catch_bounds
        if bounds is None or bounds[1] >= settings.HITL_KNOWN_ANSWER_CATCH_BAR:
            return ""
        return "misses known answers"


def reviewer_stats(period: Period, category_id: int | None = None) -> list[ReviewerStats]:
    rows = ReviewerRollup.objects.filter(day__gte=period.start, day__lte=period.end)
    if category_id:
        rows = rows.filter(category_id=category_id)
    stats: dict[int, ReviewerStats] = {}
    days: dict[int, set[date]] = defaultdict(set)
    for row in rows.order_by().values(
        "reviewer_id",
        "reviewer__username",
        "day",
        "decided",
        "approved",
        "modified",
        "rejected",
        "review_hist",
        "batched",
        "unopened",
    ):
        s = stats.setdefault(
            row["reviewer_id"],
            ReviewerStats(row["reviewer_id"], row["reviewer__username"], 0, 0, 0, 0, 0, []),
        )
        s.decided += row["decided"]
        s.approved += row["approved"]
        s.modified += row["modified"]
        s.rejected += row["rejected"]
        s.batched += row["batched"]
        s.unopened += row["unopened"]
        add_lists(s.review_hist, row["review_hist"])
        days[row["reviewer_id"]].add(row["day"])
    for reviewer_id, s in stats.items():
        s.active_days = len(days[reviewer_id])
    scope = Q(request__category_id=category_id) if category_id else Q()
    for row in catch_counts(period, scope):
        s = stats.setdefault(
            row["reviewer_id"],
            ReviewerStats(row["reviewer_id"], row["reviewer__username"], 0, 0, 0, 0, 0, []),
        )
        s.checks, s.caught = row["checks"], row["caught"]
    return sorted(stats.values(), key=lambda s: (-s.decided, -s.checks))


def catch_counts(period: Period, scope: Q | None = None) -> list[dict]:
    """Per reviewer: the known-answer checks they decided in the period, and those caught;
    `scope` narrows the checks (a category's, an agent's)."""
    start, end = period.bounds
    rows = KnownAnswerCheck.objects.filter(
        scope or Q(),
        decided_at__gte=start,
        decided_at__lt=end,
        caught__isnull=False,
        reviewer__isnull=False,
    )
    return list(
        rows.order_by()
        .values("reviewer_id", "reviewer__username")
        .annotate(checks=Count("id"), caught=Count("id", filter=Q(caught=True)))
    )
