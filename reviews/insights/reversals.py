"""Reversals counted at read time, per day and category: a reversal comes long after the
decision it reverses, so it has no place in the decision rollups; the table is small (one row
per reversed action) and indexed by time, and a count read from it cannot disagree with a
rebuild of anything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..models import Reversal
from .periods import Period
from .stats import share


@dataclass(frozen=True)
class Reversals:
    """Actions reversed in a period (by the day of the reversal), of the period's decisions."""

    count: int
    decisions: int

    @property
    def rate(self) -> float | None:
        return share(self.count, self.decisions)


def reversals_by_day(
    period: Period, category_id: int | None = None, agent_id: int | None = None
) -> dict[tuple[date, int], int]:
    """Reversals per (day, category) in the period, days in the site's time zone as the
    rollups count them; one query."""
    start, end = period.bounds
    rows = Reversal.objects.filter(created_at__gte=start, created_at__lt=end)
    if category_id:
        rows = rows.filter(request__category_id=category_id)
    if agent_id:
        rows = rows.filter(agent_id=agent_id)
    counted = (
        rows.annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .order_by()
        .values("day", "request__category_id")
        .annotate(n=Count("id"))
    )
    return {(row["day"], row["request__category_id"]): row["n"] for row in counted}


def reversals_in(
    period: Period, decisions: int, category_id: int | None = None, agent_id: int | None = None
) -> Reversals:
    return Reversals(sum(reversals_by_day(period, category_id, agent_id).values()), decisions)
