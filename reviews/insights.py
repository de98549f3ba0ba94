"""What the rollups say: summaries, calibration, patterns, reviewers and autonomy readiness
(threshold advice is in reviews.advice). Reads rollup rows (never all decisions); pure
arithmetic where possible.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from . import rules as engine
from .figures import day as figures_day
from .figures import pct_bar, pct_vs, places_apart
from .models import (
    PEOPLE_CHANNELS,
    Category,
    CategoryAutonomy,
    DailyRollup,
    Decision,
    EscalationRule,
    ReviewerRollup,
    SecondReview,
    SpotCheckItem,
    SubmissionRollup,
)
from .rollups import CONF_BUCKETS, TIME_EDGES, day_bounds

PERIODS = [7, 30, 90, 365]
DEFAULT_PERIOD = 30
# A reviewer who approves nearly everything this fast is probably not reading.
RUBBER_STAMP_SECONDS = 5.0
RUBBER_STAMP_APPROVE_SHARE = 0.97
REJECT_EVERYTHING_SHARE = 0.9
REVIEWER_MIN_DECISIONS = 20
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
    "auto_approved",
    "review_hist",
    "decision_hist",
    "conf_n",
    "conf_ok",
    "conf_sum",
]


# --- statistics ----------------------------------------------------------------------------


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion; (0, 1) with no data."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(hist: list[int], q: float) -> float | None:
    """The q-quantile of a TIME_EDGES histogram, interpolated linearly inside its bucket."""
    n = sum(hist)
    if n == 0:
        return None
    rank = q * n
    seen = 0
    for index, count in enumerate(hist):
        if count and seen + count >= rank:
            low = TIME_EDGES[index - 1] if index > 0 else 0
            if index >= len(TIME_EDGES):
                return float(low)  # open-ended last bucket: report its floor
            high = TIME_EDGES[index]
            return low + (high - low) * max(rank - seen, 0) / count
        seen += count
    return float(TIME_EDGES[-1])


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def add_lists(target: list, source: list) -> list:
    if len(target) < len(source):
        target.extend([0] * (len(source) - len(target)))
    for i, value in enumerate(source):
        target[i] += value
    return target


# --- periods -------------------------------------------------------------------------------


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


# --- summaries -----------------------------------------------------------------------------


@dataclass
class Summary:
    total: int = 0
    approved: int = 0
    modified: int = 0
    rejected: int = 0
    timed_out: int = 0
    auto_approved: int = 0
    review_hist: list[int] = field(default_factory=list)
    decision_hist: list[int] = field(default_factory=list)
    conf_n: list[int] = field(default_factory=list)
    conf_ok: list[int] = field(default_factory=list)
    conf_sum: list[float] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> Summary:
        for name in ("total", "approved", "modified", "rejected", "timed_out", "auto_approved"):
            setattr(self, name, getattr(self, name) + row[name])
        for name in ("review_hist", "decision_hist", "conf_n", "conf_ok", "conf_sum"):
            add_lists(getattr(self, name), row[name])
        return self

    @property
    def human(self) -> int:
        return self.approved + self.modified + self.rejected

    @property
    def escalated(self) -> int:
        """Decisions on escalated requests: by people or by the deadline. (The escalation
        rate is over submissions: see Submissions.)"""
        return self.total - self.auto_approved

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


# --- calibration -----------------------------------------------------------------------------

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    n: int
    ok: int
    stated: float | None  # mean stated confidence

    @property
    def observed(self) -> float | None:
        return share(self.ok, self.n)

    @property
    def label(self) -> str:
        return f"{self.low:.1f} to {self.high:.1f}"


def calibration_bins(summary: Summary) -> list[Bin]:
    """The 20 stored confidence buckets merged into 10 bins of 0.1."""
    step = CONF_BUCKETS // CALIBRATION_BINS
    n, ok, total = (summary.conf_n or [0] * CONF_BUCKETS), summary.conf_ok, summary.conf_sum
    bins = []
    for b in range(CALIBRATION_BINS):
        idx = range(b * step, (b + 1) * step)
        count = sum(n[i] for i in idx if i < len(n))
        good = sum(ok[i] for i in idx if i < len(ok))
        stated = sum(total[i] for i in idx if i < len(total))
        bins.append(
            Bin(
                b / CALIBRATION_BINS,
                (b + 1) / CALIBRATION_BINS,
                count,
                good,
                stated / count if count else None,
            )
        )
    return bins


def _against(stated: float, low: float, high: float) -> tuple[str, int]:
    """The verdict of an interval against a stated confidence, and the decimals at which
    the figures must print so that "overconfident" never reads "says 90%, at most 90%"."""
    if high < stated:
        return "overconfident", places_apart(high, stated, 0)
    if low > stated:
        return "underconfident", places_apart(low, stated, 0)
    return "well calibrated", 0


def calibration_reading(bins: list[Bin], min_n: int = 20) -> str:
    """One line over all the decisions with a stated confidence: the mean stated confidence
    against how often the agent was right, with its 95% interval; then the 0.1 bins whose own
    interval misses their stated level (the chart shows every bin)."""
    n = sum(b.n for b in bins)
    if n < min_n:
        return (
            f"Not enough human decisions to judge calibration yet "
            f"(n = {n:,}; {min_n} with a stated confidence needed)."
        )
    ok = sum(b.ok for b in bins)
    stated = sum((b.stated or 0.0) * b.n for b in bins) / n
    low, high = wilson(ok, n)
    verdict, places = _against(stated, low, high)
    text = (
        f"Says {stated * 100:.{places}f}%, right {ok / n * 100:.{places}f}% of the time "
        f"(all {n:,} decisions with a stated confidence; 95% interval "
        f"{low * 100:.{places}f}% to {high * 100:.{places}f}%): {verdict}."
    )
    off = []
    for b in bins:
        if b.n < min_n or b.n == n or b.stated is None:
            continue  # too few to say, or the headline already is this bin
        b_low, b_high = wilson(b.ok, b.n)
        b_verdict, b_places = _against(b.stated, b_low, b_high)
        if b_verdict != "well calibrated":
            off.append(
                f"{b.label}: says {b.stated * 100:.{b_places}f}%, right "
                f"{(b.observed or 0.0) * 100:.{b_places}f}% (n = {b.n:,}, {b_verdict})"
            )
    if off:
        text += " Off in " + "; ".join(off) + "."
    return text


CALIBRATION_HINT_DAYS = 90
CALIBRATION_HINT_MIN_N = 20


@dataclass(frozen=True)
class CalibrationHint:
    """How often the agent was right at the confidence it states on one request."""

    stated: float
    bin: Bin

    @property
    def enough(self) -> bool:
        return self.bin.n >= CALIBRATION_HINT_MIN_N

    @property
    def band(self) -> str:
        return f"{self.bin.low * 100:.0f}\u2013{self.bin.high * 100:.0f}%"  # an en dash

    @property
    def text(self) -> str:
        if not self.enough:
            return f"too few decisions to judge (n={self.bin.n:,} at {self.band})"
        return f"right {self.bin.observed:.0%} of the time at {self.band} (n={self.bin.n:,})"


def calibration_hint(
    category_id: int, agent_id: int, confidence: float | None, today: date | None = None
) -> CalibrationHint | None:
    """For the item view: one query over at most CALIBRATION_HINT_DAYS rollup rows of this
    agent in this category, so it costs the same however many decisions there are."""
    if confidence is None:
        return None
    today = today or timezone.localdate()
    # No order: the sums don't need one, and the default ordering joins two tables.
    rows = (
        DailyRollup.objects.filter(
            category_id=category_id,
            agent_id=agent_id,
            rule_id=DailyRollup.ALL_RULES,
            day__gt=today - timedelta(days=CALIBRATION_HINT_DAYS),
        )
        .order_by()
        .values_list("conf_n", "conf_ok", "conf_sum")
    )
    summary = Summary()
    for conf_n, conf_ok, conf_sum in rows:
        add_lists(summary.conf_n, conf_n)
        add_lists(summary.conf_ok, conf_ok)
        add_lists(summary.conf_sum, conf_sum)
    bins = calibration_bins(summary)
    index = min(int(confidence * CALIBRATION_BINS + 1e-9), CALIBRATION_BINS - 1)
    return CalibrationHint(confidence, bins[max(index, 0)])


# --- patterns --------------------------------------------------------------------------------


def describe_delta(proposed: Any, final: Any) -> list[str]:
    """'amount lowered to 50%', 'note changed' … for a modification."""
    if not isinstance(proposed, dict) or not isinstance(final, dict):
        return ["action replaced"]
    changes = []
    for key in sorted(set(proposed) | set(final)):
        before, after = proposed.get(key), final.get(key)
        if before == after:
            continue
        if key not in final:
            changes.append(f"{key} removed")
        elif key not in proposed:
            changes.append(f"{key} added")
        elif engine.is_number(before) and engine.is_number(after) and before:
            verb = "lowered" if after < before else "raised"
            changes.append(f"{key} {verb} to {after / before:.0%}")
        else:
            changes.append(f"{key} changed")
    return changes or ["no visible change"]


def option_change(recommended: str, chosen: str) -> str:
    """'option B instead of A': what a person chose over the agent's recommendation."""
    return f"option {chosen} instead of {recommended}"


@dataclass
class Pattern:
    category: Category
    rule: EscalationRule | None
    rule_id: int
    n: int
    modified: int
    rejected: int
    changes: list[tuple[str, int]] = field(default_factory=list)
    reasons: list[tuple[str, int]] = field(default_factory=list)

    @property
    def changed_share(self) -> float:
        return (self.modified + self.rejected) / self.n if self.n else 0.0

    @property
    def rule_label(self) -> str:
        if self.rule is not None:
            return engine.rule_summary(self.rule)
        return "any escalation" if self.rule_id == 0 else f"rule #{self.rule_id} (deleted)"


def patterns(
    period: Period, category_id: int | None = None, limit: int = 8, min_n: int = 10
) -> list[Pattern]:
    """Category/rule pairs people keep modifying or rejecting, most changed first, with the
    commonest modifications and reasons read from their latest decisions (bounded)."""
    rows = rollup_rows(period, category_id, rule_id=None)
    groups = group_by(rows, "category_id", "rule_id")
    ranked = sorted(
        ((key, s) for key, s in groups.items() if s.human >= min_n and s.modified + s.rejected),
        key=lambda item: (item[1].modified + item[1].rejected) / item[1].human,
        reverse=True,
    )[:limit]
    categories = Category.objects.in_bulk({k[0] for k, _ in ranked})
    rules = EscalationRule.objects.in_bulk({k[1] for k, _ in ranked})
    start, end = period.bounds
    found = []
    for (cat_id, rule_id), s in ranked:
        pattern = Pattern(
            categories[cat_id], rules.get(rule_id), rule_id, s.human, s.modified, s.rejected
        )
        # Changed by a person: modified, rejected, or approved with another option.
        recent = (
            Decision.objects.filter(
                request__category_id=cat_id,
                as_proposed=False,
                channel__in=PEOPLE_CHANNELS,
                created_at__gte=start,
                created_at__lt=end,
            )
            .order_by("-created_at")
            .values_list(
                "outcome",
                "final_action",
                "chosen_option",
                "reason",
                "request__proposed_action",
                "request__recommended_option",
                "request__fired_rules",
            )[:300]
        )
        changes: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for outcome, final, chosen, reason, proposed, recommended, fired in recent:
            if rule_id and not any(f.get("rule_id") == rule_id for f in fired or ()):
                continue
            if outcome == Decision.Outcome.MODIFIED:
                changes.update(describe_delta(proposed, final))
            if chosen and recommended and chosen != recommended:
                changes[option_change(recommended, chosen)] += 1
            if reason.strip():
                reasons[reason.strip()[:140]] += 1
        pattern.changes = changes.most_common(3)
        pattern.reasons = reasons.most_common(3)
        found.append(pattern)
    return found


# --- reviewers ---------------------------------------------------------------------------------


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
    return sorted(stats.values(), key=lambda s: -s.decided)


# --- autonomy ----------------------------------------------------------------------------------
# Switching a category to autonomous hands over its escalations: the requests a person decides
# today. Its rule auto-approvals already run without one. So readiness is measured on people's
# decisions on the category's escalations, and only since its last switch or reinstatement:
# after the gate came back, the decisions before it must not make the category "ready" again.
# Periodic review of auto-approvals is another population, shown beside it, never pooled.

# A category that never switched is judged on its escalations of this many days.
READINESS_DAYS = 90


def zero_error_sample(bar: float, z: float = 1.96) -> int | None:
    """The fewest decisions whose 95% Wilson lower bound reaches `bar` with no error at all:
    fewer can never show the bar (381 for 99%, 73 for 95%). None for a bar of 100%."""
    if bar >= 1:
        return None
    # With no error the lower bound is n / (n + z²); solve for n, then settle float rounding.
    n = max(1, math.ceil(bar * z * z / (1 - bar)))
    while n > 1 and wilson(n - 1, n - 1, z)[0] >= bar:
        n -= 1
    while wilson(n, n, z)[0] < bar:
        n += 1
    return n


@dataclass
class Readiness:
    category: Category
    autonomy: CategoryAutonomy
    since: datetime  # the evidence window starts here
    since_reason: str  # "reinstated", "switched to autonomous", or "" (the last READINESS_DAYS)
    human_n: int  # escalations decided by people in the window
    human_ok: int  # of those, approved as proposed
    timed_out: int  # escalations the deadline decided: no one's judgement, not counted
    sampled_n: int  # periodic review of actions taken without a person (not in the bound)
    sampled_ok: int

    @property
    def n(self) -> int:
        return self.human_n

    @property
    def ok(self) -> int:
        return self.human_ok

    @property
    def accuracy(self) -> float | None:
        return share(self.human_ok, self.human_n)

    @property
    def lower(self) -> float:
        return wilson(self.human_ok, self.human_n)[0]

    @property
    def sampled_accuracy(self) -> float | None:
        return share(self.sampled_ok, self.sampled_n)

    @property
    def bar(self) -> float:
        return self.autonomy.effective_bar

    @property
    def statistical_min(self) -> int | None:
        return zero_error_sample(self.bar)

    @property
    def min_sample(self) -> int | None:
        """The larger of what the bar needs with no errors and the category's own minimum
        (which therefore only binds when it asks for more)."""
        needed = self.statistical_min
        if needed is None:
            return None
        return max(needed, self.autonomy.effective_min_sample)

    @property
    def min_reason(self) -> str:
        if self.min_sample is not None and self.min_sample > (self.statistical_min or 0):
            return "the category's minimum"
        return f"the fewest that can show {pct_bar(self.bar)} with no errors"

    @property
    def monitored(self) -> bool:
        return self.category.sample_rate > 0

    @property
    def is_autonomous(self) -> bool:
        return self.category.mode == Category.Mode.AUTONOMOUS

    @property
    def reinstated(self) -> bool:
        """The gate came back (the sequential test) and the category has not switched since."""
        return not self.is_autonomous and self.autonomy.reinstated_at is not None

    @property
    def last_period(self) -> bool:
        """A monitoring period ran and has ended: its verdicts are shown on the card."""
        return (
            not self.is_autonomous
            and self.autonomy.autonomous_since is not None
            and self.autonomy.ended_at is not None
        )

    @property
    def window(self) -> str:
        if self.since_reason:
            return f"since {figures_day(self.since)} ({self.since_reason} then)"
        return f"in the last {READINESS_DAYS} days (never switched)"

    @property
    def evidence(self) -> str:
        """What the bound rests on, in one sentence a manager can check."""
        noun = "escalation" if self.human_n == 1 else "escalations"
        text = f"{self.human_n:,} {noun} decided by people {self.window}"
        if self.human_n:
            text += (
                f"; {pct_vs(self.accuracy or 0.0, self.bar)} taken as proposed, lower bound "
                f"{pct_vs(self.lower, self.bar)}"
            )
        return text

    @property
    def sampled(self) -> str:
        if not self.sampled_n:
            return "none checked in this window (not part of the bound)"
        return (
            f"{self.sampled_n:,} checked, {self.sampled_accuracy:.1%} correct "
            "(not part of the bound)"
        )

    @property
    def blockers(self) -> list[str]:
        out = []
        if self.min_sample is None:
            out.append(f"no sample can show a {pct_bar(self.bar)} bar")
        elif self.human_n < self.min_sample:
            out.append(
                f"{self.human_n:,} decided escalations, {self.min_sample:,} needed "
                f"({self.min_reason})"
            )
        if self.human_n and self.lower < self.bar:
            out.append(
                f"lower bound {pct_vs(self.lower, self.bar)} below the {pct_bar(self.bar)} bar"
            )
        if not self.monitored:
            out.append("no periodic review (sample rate 0)")
        return out

    @property
    def ready(self) -> bool:
        return not self.blockers


def evidence_start(autonomy: CategoryAutonomy | None, now: datetime) -> tuple[datetime, str]:
    """Where a category's readiness evidence starts: its last switch or reinstatement, or
    READINESS_DAYS whole days back if it never switched."""
    marks = []
    if autonomy is not None:
        marks = [
            (moment, reason)
            for moment, reason in (
                (autonomy.reinstated_at, "reinstated"),
                (autonomy.autonomous_since, "switched to autonomous"),
            )
            if moment is not None
        ]
    if marks:
        return max(marks, key=lambda mark: mark[0])
    first = timezone.localtime(now).date() - timedelta(days=READINESS_DAYS - 1)
    return day_bounds(first)[0], ""


def readiness(now: datetime | None = None, category_id: int | None = None) -> list[Readiness]:
    """Per category, over its own window (not the page's period): people's decisions on its
    escalations, approved as proposed, against its bar; and, apart, its periodic review.

    A few queries whatever the window: whole days from the rollups, the first (partial)
    day of windows that start at a switch from that day's decisions, and the spot checks."""
    now = now or timezone.now()
    categories = list(Category.objects.order_by("name"))
    if category_id is not None:
        categories = [c for c in categories if c.pk == category_id]
    if not categories:
        return []
    autonomies = {a.category_id: a for a in CategoryAutonomy.objects.all()}
    starts = {c.pk: evidence_start(autonomies.get(c.pk), now) for c in categories}
    whole_days, first_day, checks = Q(), Q(), Q()
    for pk, (since, reason) in starts.items():
        day = timezone.localtime(since).date()
        checks |= Q(request__category_id=pk, request__created_at__gte=since)
        if not reason:  # the window starts at midnight: whole days only
            whole_days |= Q(category_id=pk, day__gte=day)
            continue
        whole_days |= Q(category_id=pk, day__gt=day)
        first_day |= Q(
            request__category_id=pk, created_at__gte=since, created_at__lt=day_bounds(day)[1]
        )
    tallies: dict[int, Counter] = defaultdict(Counter)
    for row in (
        DailyRollup.objects.filter(whole_days, rule_id=DailyRollup.ALL_RULES)
        .order_by()
        .values("category_id")
        .annotate(
            n=Sum(F("approved") + F("modified") + F("rejected")),
            ok=Sum("approved"),
            timed_out=Sum("timed_out"),
        )
    ):
        tallies[row["category_id"]].update(
            {"n": row["n"], "ok": row["ok"], "timed_out": row["timed_out"]}
        )
    people = Q(channel__in=PEOPLE_CHANNELS)
    first_rows = (
        Decision.objects.filter(first_day, effective_at__lte=now)
        .order_by()
        .values("request__category_id")
        .annotate(
            n=Count("id", filter=people),
            ok=Count("id", filter=people & Q(as_proposed=True)),
            timed_out=Count("id", filter=Q(channel=Decision.Channel.TIMEOUT)),
        )
        if first_day
        else []
    )
    for row in first_rows:
        tallies[row["request__category_id"]].update(
            {"n": row["n"], "ok": row["ok"], "timed_out": row["timed_out"]}
        )
    for row in (
        SpotCheckItem.objects.filter(checks)
        .exclude(verdict="")
        .order_by()
        .values("request__category_id")
        .annotate(n=Count("id"), ok=Count("id", filter=Q(verdict=SpotCheckItem.Verdict.CORRECT)))
    ):
        tallies[row["request__category_id"]].update(
            {"checked_n": row["n"], "checked_ok": row["ok"]}
        )
    out = []
    for category in categories:
        t = tallies[category.pk]
        since, reason = starts[category.pk]
        out.append(
            Readiness(
                category=category,
                autonomy=autonomies.get(category.pk) or CategoryAutonomy(category=category),
                since=since,
                since_reason=reason,
                human_n=t["n"],
                human_ok=t["ok"],
                timed_out=t["timed_out"],
                sampled_n=t["checked_n"],
                sampled_ok=t["checked_ok"],
            )
        )
    return out


# --- reviewer agreement ------------------------------------------------------------------------
# Second reviews are a small sample (a few percent of human decisions), grouped in the database:
# the page reads one row per category, reviewer pair and outcome pair, however many there are.

OUTCOMES = [Decision.Outcome.APPROVED, Decision.Outcome.MODIFIED, Decision.Outcome.REJECTED]


@dataclass
class Agreement:
    """How often a second, blind reviewer reached the same outcome as the first."""

    label: str
    policy_rate: float | None = None  # a category's second review rate
    n: int = 0
    agreed: int = 0
    same_action: int = 0
    first: Counter = field(default_factory=Counter)  # outcomes of the first decisions
    second: Counter = field(default_factory=Counter)  # outcomes of the second opinions

    def add(self, row: dict[str, Any]) -> None:
        self.n += row["n"]
        self.agreed += row["n"] if row["first_outcome"] == row["outcome"] else 0
        self.same_action += row["same"]
        self.first[row["first_outcome"]] += row["n"]
        self.second[row["outcome"]] += row["n"]

    @property
    def rate(self) -> float | None:
        return share(self.agreed, self.n)

    @property
    def lower(self) -> float:
        return wilson(self.agreed, self.n)[0]

    @property
    def upper(self) -> float:
        return wilson(self.agreed, self.n)[1]

    @property
    def action_rate(self) -> float | None:
        return share(self.same_action, self.n)

    @property
    def kappa(self) -> float | None:
        """Cohen's kappa: agreement beyond what two reviewers approving nearly everything
        would reach by chance. None without data or when chance agreement is total."""
        if not self.n:
            return None
        expected = sum(self.first[o] * self.second[o] for o in OUTCOMES) / (self.n * self.n)
        if expected >= 1:
            return None
        return (self.agreed / self.n - expected) / (1 - expected)


@dataclass
class Disagreement:
    first: str
    second: str
    n: int
    share: float  # of all disagreements


@dataclass
class AgreementReport:
    total: Agreement
    by_category: list[Agreement]
    as_first: list[Agreement]
    as_second: list[Agreement]
    disagreements: list[Disagreement]
    waiting: int  # second reviews assigned and not yet answered


def _largest_first(items: Iterable[Agreement]) -> list[Agreement]:
    return sorted(items, key=lambda a: (-a.n, a.label))


def agreement(period: Period, category_id: int | None = None) -> AgreementReport:
    """Agreement of second reviews answered in the period: overall, per category, and per
    reviewer as the first decider and as the second."""
    start, end = period.bounds
    answered = SecondReview.objects.filter(decided_at__gte=start, decided_at__lt=end).exclude(
        outcome=""
    )
    waiting = SecondReview.objects.filter(outcome="")
    if category_id:
        answered = answered.filter(category_id=category_id)
        waiting = waiting.filter(category_id=category_id)
    rows = list(
        answered.order_by()
        .values("category_id", "first_reviewer_id", "reviewer_id", "first_outcome", "outcome")
        .annotate(n=Count("id"), same=Count("id", filter=Q(actions_match=True)))
    )
    people = {r["first_reviewer_id"] for r in rows} | {r["reviewer_id"] for r in rows}
    names = dict(
        get_user_model().objects.filter(pk__in=people - {None}).values_list("pk", "username")
    )
    policies = {
        pk: (name, rate)
        for pk, name, rate in Category.objects.values_list("pk", "name", "second_review_rate")
    }
    total = Agreement("All categories")
    categories: dict[int, Agreement] = {}
    firsts: dict[Any, Agreement] = {}
    seconds: dict[int, Agreement] = {}
    pairs: Counter = Counter()
    for row in rows:
        total.add(row)
        cat = row["category_id"]
        if cat not in categories:
            name, rate = policies.get(cat, (f"#{cat}", None))
            categories[cat] = Agreement(name, policy_rate=rate)
        categories[cat].add(row)
        first = row["first_reviewer_id"]
        firsts.setdefault(first, Agreement(names.get(first, "(deleted user)"))).add(row)
        second = row["reviewer_id"]
        seconds.setdefault(second, Agreement(names.get(second, "(deleted user)"))).add(row)
        if row["first_outcome"] != row["outcome"]:
            pairs[(row["first_outcome"], row["outcome"])] += row["n"]
    disagreeing = sum(pairs.values())
    return AgreementReport(
        total=total,
        by_category=_largest_first(categories.values()),
        as_first=_largest_first(firsts.values()),
        as_second=_largest_first(seconds.values()),
        disagreements=[
            Disagreement(first, second, n, n / disagreeing)
            for (first, second), n in pairs.most_common()
        ],
        waiting=waiting.count(),
    )
