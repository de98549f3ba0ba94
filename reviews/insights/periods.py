"""The period a metrics page reads: the last N days, or from-to dates a manager picked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.utils import timezone

from ..rollups import day_bounds

PERIODS = [7, 30, 90, 365]


DEFAULT_PERIOD = 30


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return day_bounds(self.start)[0], day_bounds(self.end)[1]


def period_from(params: Any, today: date | None = None) -> Period:
    """?days=7|30|90|365, or ?from=YYYY-MM-DD&to=YYYY-MM-DD; the last 30 days otherwise."""
    today = today or timezone.localdate()
    try:
        start = date.fromisoformat(params.get("from", ""))
        end = date.fromisoformat(params.get("to", "")) if params.get("to") else today
        if start <= end and (end - start).days <= 3660:
            return Period(start, end)
    except ValueError:
        pass
    try:
        days = int(params.get("days", DEFAULT_PERIOD))
    except ValueError:
        days = DEFAULT_PERIOD
    days = days if days in PERIODS else DEFAULT_PERIOD
    return Period(today - timedelta(days=days - 1), today)
