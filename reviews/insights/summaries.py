"""Counts and shares of a period's requests, from the daily rollups."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Sum

from ..models import (
    DailyRollup,
    SubmissionRollup,
)
from .periods import Period
from .stats import add_lists, percentile, share

ROLLUP_FIELDS = [
    "day",
    "category_id",
    "agent_id",
    "rule_id",
    "total",
    "approved",
    "modified",
    "rejected",
    "timed_out",
    "stopped",
    "auto_approved",
    "review_hist",
    "decision_hist",
    "conf_n",
    "conf_ok",
    "conf_sum",
    "answered",
    "rounds",
    "with_rounds",
    "agent_hist",
    "human_hist",
]
# A Summary adds up these counts, and these histograms and tallies element by element.
COUNTS = [
    "total", "approved", "modified", "rejected", "timed_out", "stopped", "auto_approved",
    "answered", "rounds", "with_rounds",
]  # fmt: skip
LISTS = [
    "review_hist", "decision_hist", "conf_n", "conf_ok", "conf_sum", "agent_hist", "human_hist",
]  # fmt: skip


@dataclass
class Summary:
    total: int = 0
    approved: int = 0
    modified: int = 0
    rejected: int = 0
    timed_out: int = 0
    stopped: int = 0
    auto_approved: int = 0
    review_hist: list[int] = field(default_factory=list)
    decision_hist: list[int] = field(default_factory=list)
    conf_n: list[int] = field(default_factory=list)
    conf_ok: list[int] = field(default_factory=list)
    conf_sum: list[float] = field(default_factory=list)
    answered: int = 0
    rounds: int = 0
    with_rounds: int = 0
    agent_hist: list[int] = field(default_factory=list)
    human_hist: list[int] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> Summary:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + row[name])
        for name in LISTS:
            add_lists(getattr(self, name), row[name])
        return self

    @property
    def human(self) -> int:
        """People's judgements of proposals: approved, modified or rejected."""
        return self.approved + self.modified + self.rejected

    @property
    def reviewed(self) -> int:
        """Requests people decided: their judgements and their answers to questions."""
        return self.human + self.answered

    @property
    def escalated(self) -> int:
        """Decisions on escalated requests that judge a proposal: by people, or by the
        deadline or a stop for no one; answers to questions are neither approvals nor
        rejections, so not here. (The escalation rate is over submissions: see Submissions.)"""
        return self.total - self.auto_approved - self.answered

    @property
    def rounds_mean(self) -> float | None:
        """Rounds per request people decided."""
        return self.rounds / self.reviewed if self.reviewed else None

    @property
    def with_rounds_rate(self) -> float | None:
        """Share of requests people decided that went to the agent and back at least once."""
        return share(self.with_rounds, self.reviewed)

    @property
    def agent_p50(self) -> float | None:
        """Median time a decided escalation waited on the agent."""
        return percentile(self.agent_hist, 0.5)

    @property
    def human_p50(self) -> float | None:
        """Median time a decided escalation waited on people: creation to decision, less
        the agent's turns."""
        return percentile(self.human_hist, 0.5)

    def rate(self, name: str) -> float | None:
        """Share of decisions on escalated requests with this outcome."""
        return share(getattr(self, name), self.escalated)

    @property
    def review_p50(self) -> float | None:
        return percentile(self.review_hist, 0.5)

    @property
    def review_p90(self) -> float | None:
        return percentile(self.review_hist, 0.9)

    @property
    def decision_p50(self) -> float | None:
        return percentile(self.decision_hist, 0.5)

    @property
    def decision_p90(self) -> float | None:
        return percentile(self.decision_hist, 0.9)


@dataclass
class Submissions:
    """Requests submitted in a period and how many the rules sent to a person, by the day of
    submission: pending ones count, and a request decided next month is still this period's."""

    submitted: int = 0
    escalated: int = 0

    def add(self, row: dict[str, Any]) -> Submissions:
        self.submitted += row["submitted"]
        self.escalated += row["escalated"]
        return self

    @property
    def rate(self) -> float | None:
        return share(self.escalated, self.submitted)


def submission_rows(
    period: Period, category_id: int | None = None, agent_id: int | None = None
) -> list[dict[str, Any]]:
    rows = SubmissionRollup.objects.filter(day__gte=period.start, day__lte=period.end)
    if category_id:
        rows = rows.filter(category_id=category_id)
    if agent_id:
        rows = rows.filter(agent_id=agent_id)
    return list(rows.order_by().values("day", "category_id", "agent_id", "submitted", "escalated"))


def submissions_by(rows: Iterable[dict[str, Any]], key: str | None = None) -> Any:
    """All rows as one Submissions, or {key value: Submissions}."""
    if key is None:
        total = Submissions()
        for row in rows:
            total.add(row)
        return total
    groups: dict[Any, Submissions] = defaultdict(Submissions)
    for row in rows:
        groups[row[key]].add(row)
    return dict(groups)


def rollup_rows(
    period: Period,
    category_id: int | None = None,
    agent_id: int | None = None,
    rule_id: int | None = DailyRollup.ALL_RULES,
) -> list[dict[str, Any]]:
    """Rollup rows of the period (one query); rule_id None: the rows of every rule."""
    rows = DailyRollup.objects.filter(day__gte=period.start, day__lte=period.end)
    if rule_id is not None:
        rows = rows.filter(rule_id=rule_id)
    else:
        rows = rows.exclude(rule_id=DailyRollup.ALL_RULES)
    if category_id:
        rows = rows.filter(category_id=category_id)
    if agent_id:
        rows = rows.filter(agent_id=agent_id)
    return list(rows.order_by().values(*ROLLUP_FIELDS))


def timed_out(period: Period, category_id: int | None = None, agent_id: int | None = None) -> int:
    """Decisions the deadline made in the period: for the pages that count only people's."""
    rows = DailyRollup.objects.filter(
        day__gte=period.start, day__lte=period.end, rule_id=DailyRollup.ALL_RULES
    )
    if category_id:
        rows = rows.filter(category_id=category_id)
    if agent_id:
        rows = rows.filter(agent_id=agent_id)
    return rows.order_by().aggregate(n=Sum("timed_out"))["n"] or 0


def summarize(rows: Iterable[dict[str, Any]]) -> Summary:
    summary = Summary()
    for row in rows:
        summary.add(row)
    return summary


def group_by(rows: Iterable[dict[str, Any]], *keys: str) -> dict[Any, Summary]:
    groups: dict[Any, Summary] = defaultdict(Summary)
    for row in rows:
        key = row[keys[0]] if len(keys) == 1 else tuple(row[k] for k in keys)
        groups[key].add(row)
    return dict(groups)
