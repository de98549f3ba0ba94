"""Whether a category can run without a human.

Switching a category to autonomous hands over its escalations: the requests a person decides
today. Its rule auto-approvals already run without one. So readiness is measured on people's
decisions on the category's escalations, and only since its last switch or reinstatement:
after the gate came back, the decisions before it must not make the category "ready" again.
Periodic review of auto-approvals is another population, shown beside it, never pooled."""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from ..figures import day as figures_day
from ..figures import pct_bar, pct_vs
from ..models import (
    COST_FIELDS,
    PEOPLE_CHANNELS,
    QUESTION_DECISIONS,
    Category,
    CategoryAutonomy,
    DailyRollup,
    Decision,
    PeriodicReviewItem,
)
from ..rollups import day_bounds
from .damage import (
    Damage,
    Evidence,
    about,
    at_stake,
    damages_at_stake,
    decisions_needed,
    escalations_a_month,
)
from .stats import share, wilson, zero_error_sample

# A category that never switched is judged on its escalations of this many days.
READINESS_DAYS = 90
# The policy fields readiness reads from the category: its sampling and what an error costs.
POLICY_INPUTS = ("sample_rate", *COST_FIELDS)


@dataclass(frozen=True)
class Blocker:
    kind: str  # "sample", "accuracy", "damage" or "monitoring"
    text: str

    LABELS = {
        "sample": "Too few decisions",
        "accuracy": "Accuracy",
        "damage": "Damage",
        "monitoring": "Monitoring",
    }

    @property
    def label(self) -> str:
        return self.LABELS[self.kind]


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
    # What the escalations' errors would cost a month without a person (None: not computed).
    damage: Damage | None = field(default=None)

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
    def blocking(self) -> list[Blocker]:
        """What keeps the category from running without a person, each with what it is about
        (the sample, the accuracy, the damage or the monitoring) and how far off it is."""
        out = []
        if self.min_sample is None:
            out.append(Blocker("sample", f"no sample can show a {pct_bar(self.bar)} bar"))
        elif self.human_n < self.min_sample:
            out.append(
                Blocker(
                    "sample",
                    f"{self.human_n:,} decided escalation{'' if self.human_n == 1 else 's'}, "
                    f"{self.min_sample:,} needed "
                    f"({self.min_reason})",
                )
            )
        if self.human_n and self.lower < self.bar:
            out.append(
                Blocker(
                    "accuracy",
                    f"lower bound {pct_vs(self.lower, self.bar)} below the {pct_bar(self.bar)} "
                    f"bar{self._how_far(self.bar)}",
                )
            )
        if self.damage is not None and self.damage.over_budget:
            out.append(
                Blocker(
                    "damage",
                    f"errors cost too much: {self.damage.budget_words}"
                    f"{self._how_far(self.damage.target_accuracy())}",
                )
            )
        if not self.monitored:
            out.append(Blocker("monitoring", "no periodic review (sample rate 0)"))
        return out

    @property
    def blockers(self) -> list[str]:
        return [b.text for b in self.blocking]

    def _how_far(self, target: float | None) -> str:
        """': needs about 2,100 more reviewed decisions at today's accuracy', or why no number
        of them will do."""
        if target is None or target <= 0 or not self.human_n:
            return ""
        more = decisions_needed(self.human_ok, self.human_n, target)
        if more is None:
            return (
                f": at today's accuracy ({pct_vs(self.accuracy or 0.0, target)}) no number of "
                "decisions gets there"
            )
        if more == 0:
            return ""
        noun = "decision" if more == 1 else "decisions"
        return f": needs about {about(more)} more reviewed {noun} at today's accuracy"

    @property
    def ready(self) -> bool:
        return not self.blockers


def under_policy(
    state: Readiness, policy: Mapping[str, Any], now: datetime | None = None
) -> Readiness:
    """The same evidence judged under a policy being edited (its sampling, its costs and
    accepted damage): the readiness a save would give. A switch saved with a new accepted
    damage is judged on that figure, not on the one it replaces."""
    edited = {
        name: policy[name]
        for name in POLICY_INPUTS
        if name in policy and policy[name] != getattr(state.category, name)
    }
    if not edited:
        return state
    now = now or timezone.now()
    draft = copy.copy(state.category)
    for name, value in edited.items():
        setattr(draft, name, value)
    volume = (
        state.damage.volume
        if state.damage is not None
        else escalations_a_month(now).get(draft.pk, 0.0)
    )
    damage = at_stake(
        draft,
        since=state.since,
        judged=state.human_n,
        errors=state.human_n - state.human_ok,
        volume=volume,
        now=now,
    )
    return replace(state, category=draft, damage=damage)


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


def readiness_of(now: datetime | None = None, category_id: int | None = None) -> list[Readiness]:
    """Per category, over its own window (not the page's period): people's decisions on its
    escalations, approved as proposed, against its bar; and, apart, its periodic review.

    A few queries whatever the window: whole days from the rollups, the first (partial)
    day of windows that start at a switch from that day's decisions, and the periodic reviews."""
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
    # As in the rollups: an answer to a question is no judgement of a proposal.
    people = Q(channel__in=PEOPLE_CHANNELS) & ~Q(request__allowed_decisions=QUESTION_DECISIONS)
    first_rows = (
        Decision.objects.filter(first_day, effective_at__lte=now, request__is_check=False)
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
        PeriodicReviewItem.objects.filter(checks)
        .exclude(verdict="")
        .order_by()
        .values("request__category_id")
        .annotate(
            n=Count("id"), ok=Count("id", filter=Q(verdict=PeriodicReviewItem.Verdict.CORRECT))
        )
    ):
        tallies[row["request__category_id"]].update(
            {"checked_n": row["n"], "checked_ok": row["ok"]}
        )
    damages = damages_at_stake(
        [
            Evidence(
                c, starts[c.pk][0], tallies[c.pk]["n"], tallies[c.pk]["n"] - tallies[c.pk]["ok"]
            )
            for c in categories
        ],
        now,
    )
    out = []
    for category in categories:
        t = tallies[category.pk]
        since, reason = starts[category.pk]
        damage = damages[category.pk]
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
                damage=damage,
            )
        )
    return out
