"""An autonomous category is always monitored: which actions belong to its monitoring period,
the sequential test (reviews.cusum) over periodic review's verdicts on them, and the words and
health figures the autonomy page shows. Nothing here writes: the period's start and end and
the verdicts' count are reviews.services.autonomy's."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from . import cusum
from .figures import pct_bar, pct_vs
from .insights.damage import Damage, cost_per_error, errors_words, per_month
from .models import (
    CategoryAutonomy,
    Decision,
    PeriodicReviewBatch,
    PeriodicReviewItem,
    ReviewRequest,
)

# Below this many expected samples, an empty sample is plain chance (P(none) is about 5% at 3).
NOTHING_SAMPLED_EXPECTED = 3


# --- the period ------------------------------------------------------------------------------


def period_items(autonomy: CategoryAutonomy) -> QuerySet[PeriodicReviewItem]:
    """Sampled actions of the period: decided without a human since the switch. A verdict on an
    action from before it (an earlier period, or the rules mode) never counts."""
    items = PeriodicReviewItem.objects.filter(
        request__category_id=autonomy.category_id,
        request__decided_at__gte=autonomy.autonomous_since,
    )
    if autonomy.ended_at:
        items = items.filter(request__decided_at__lt=autonomy.ended_at)
    return items


def batch_purpose(batch: PeriodicReviewBatch) -> str:
    """What a batch's verdicts are for, told truthfully: only actions sampled within the
    category's current monitoring period count towards the way back to a human."""
    name = batch.category.name
    autonomy = CategoryAutonomy.objects.filter(category_id=batch.category_id).first()
    total = batch.items.count()
    counted = (
        period_items(autonomy).filter(batch=batch).count()
        if autonomy is not None and autonomy.monitoring
        else 0
    )
    if total and counted == total:
        return f"Your verdicts decide whether {name} keeps its autonomy."
    if not counted:
        return (
            f"These ran outside {name}'s current autonomous period: your verdicts help "
            "calibrate, not part of the way-back test."
        )
    return (
        f"{counted:,} of {total:,} ran in {name}'s current autonomous period and decide whether "
        "it keeps its autonomy; the others help calibrate, not part of the way-back test."
    )


# --- the sequential test ---------------------------------------------------------------------


def sequential_test(autonomy: CategoryAutonomy) -> cusum.Test:
    """The reference accuracy never exceeds the bar: an agent at the bar or better must make
    the statistic drift down, whatever the settings."""
    reference = min(settings.HITL_MONITOR_REFERENCE, autonomy.effective_bar)
    return cusum.Test(reference=reference, h=settings.HITL_MONITOR_H)


def state_of(autonomy: CategoryAutonomy) -> cusum.State:
    return cusum.State(autonomy.cusum, autonomy.run_verdicts, autonomy.run_errors)


def state_fields(state: cusum.State) -> dict[str, Any]:
    return {
        "cusum": state.value,
        "run_verdicts": state.run_verdicts,
        "run_errors": state.run_errors,
    }


# --- the damage watch ------------------------------------------------------------------------


def watched_damage(autonomy: CategoryAutonomy, *, now: datetime | None = None) -> Damage:
    """The period's month: the actions taken without a person a month (since the switch) at
    periodic review's error rate; an error costs the mean of the errors it found, or, before
    any, the mean of the period's actions."""
    now = now or timezone.now()
    category = autonomy.category
    end = autonomy.ended_at or now
    human_free = ReviewRequest.objects.filter(
        category_id=autonomy.category_id,
        decision__channel=Decision.Channel.AUTO,
        decided_at__gte=autonomy.autonomous_since,
        decided_at__lt=end,
    )
    judged = period_items(autonomy).exclude(verdict="")
    wrong = judged.filter(verdict=PeriodicReviewItem.Verdict.INCORRECT)
    counts = judged.aggregate(
        n=Count("id"), errors=Count("id", filter=Q(verdict=PeriodicReviewItem.Verdict.INCORRECT))
    )
    cost, source = cost_per_error(
        category,
        wrong.order_by("-reviewed_at").values_list("request__attributes", flat=True),
        human_free.order_by("-decided_at").values_list("attributes", flat=True),
        found_by="periodic review",
        what="action taken without a person",
    )
    ran = human_free.count()
    volume = per_month(ran, autonomy.autonomous_since, end)
    return Damage(
        category,
        volume,
        counts["n"],
        counts["errors"],
        cost,
        source,
        volume_what=f"actions a month without a person (projected from {ran:,} since the switch)",
        judged_what="periodic review verdicts",
    )


def damage_reason(damage: Damage) -> str:
    """Why the gate came back on cost, in plain words (the lower bound passed the budget)."""
    return (
        f"Periodic review found {_errors(damage.errors)} in {damage.judged:,} verdicts; over "
        f"{damage.volume:,.0f} actions a month without a person that is "
        f"{errors_words(damage.errors_lower)} costing at least "
        f"{damage.money(damage.cost_lower or 0.0)} a month at 95% (about "
        f"{damage.money(damage.cost_expected or 0.0)}), above the "
        f"{damage.money(damage.accepted or 0.0)} accepted; an error costs "
        f"{damage.money(damage.cost_per_error or 0.0)}, {damage.cost_source}."
    )


# --- words -----------------------------------------------------------------------------------


def _number(value: float, like: float) -> str:
    """`value` (>= like) rounded down to the decimals `like` needs, so it never reads below it."""
    decimals = 1 if float(like).is_integer() else min(len(repr(float(like)).split(".")[1]), 3)
    scale = 10**decimals
    return f"{math.floor(value * scale + 1e-9) / scale:.{decimals}f}"


def _errors(n: int) -> str:
    return f"{n:,} error{'s' if n != 1 else ''}"


def _last(n: int) -> str:
    return f"the last {n:,} verdicts" if n != 1 else "the last verdict"


def reinstatement_reason(test: cusum.Test, state: cusum.State, autonomy: CategoryAutonomy) -> str:
    """Why the gate came back, in plain words. The run's accuracy is always below the
    reference, and the reference never above the bar (sequential_test), so "below the bar" holds."""
    n, errors = state.run_verdicts, state.run_errors
    accuracy = pct_vs((n - errors) / n, autonomy.effective_bar)
    return (
        f"Periodic review found {_errors(errors)} in {_last(n)} ({accuracy} "
        f"correct): evidence that accuracy is below the {pct_bar(autonomy.effective_bar)} bar "
        f"(CUSUM {_number(state.value, test.h)} ≥ {test.h:g}: errors beyond the "
        f"{pct_bar(test.k)} an agent at {pct_bar(test.reference)} gets wrong)."
    )


def describe_test(test: cusum.Test, state: cusum.State) -> str:
    """Where the test stands, for the autonomy page."""
    if state.run_verdicts:
        now = f"{_errors(state.run_errors)} in {_last(state.run_verdicts)}"
    else:
        now = "no error beyond the allowance"
    fast = test.errors_within(math.ceil(test.h + cusum.EPSILON))
    example = f", e.g. {math.ceil(test.h)} errors within {fast} verdicts" if fast else ""
    return (
        f"{now}: CUSUM {state.value:.1f} of {test.h:g}. It counts errors beyond the "
        f"{pct_bar(test.k)} an agent at {pct_bar(test.reference)} gets wrong, since it was "
        f"last at 0; the gate comes back at {test.h:g}{example}."
    )


# --- health ----------------------------------------------------------------------------------


@dataclass
class Health:
    """Is the way back to a human working? Figures of the current period."""

    since: datetime
    sample_rate: float
    actions: int  # decided without a human since the switch
    sampled: int
    verdicts: int
    errors: int
    waiting: int  # sampled, no verdict yet
    oldest_waiting: datetime | None  # when the oldest of those ran
    last_verdict_at: datetime | None
    test_line: str
    warnings: list[str] = field(default_factory=list)
    # The damage watch: the period's month against the accepted damage (watched_damage).
    damage: Damage | None = None

    @property
    def sample_rate_shown(self) -> str:
        return pct_bar(self.sample_rate)


def _age(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    if hours < 48:
        return f"{math.floor(hours)} h"
    return f"{math.floor(hours / 24)} days"


def health(autonomy: CategoryAutonomy, *, now: datetime | None = None) -> Health | None:
    """The period's figures and what is wrong with them (None when not monitoring)."""
    if not autonomy.monitoring:
        return None
    now = now or timezone.now()
    since = autonomy.autonomous_since
    stale = timedelta(hours=settings.HITL_MONITOR_STALE_HOURS)
    category = autonomy.category
    human_free = ReviewRequest.objects.filter(
        category_id=autonomy.category_id, decision__channel=Decision.Channel.AUTO
    )
    open_ = Q(verdict="")
    figures = period_items(autonomy).aggregate(
        sampled=Count("id"),
        verdicts=Count("id", filter=~open_),
        errors=Count("id", filter=Q(verdict=PeriodicReviewItem.Verdict.INCORRECT)),
        waiting=Count("id", filter=open_),
        oldest_waiting=Min("request__decided_at", filter=open_),
        last_verdict_at=Max("reviewed_at"),
    )
    out = Health(
        since=since,
        sample_rate=category.sample_rate,
        actions=human_free.filter(decided_at__gte=since).count(),
        test_line=describe_test(sequential_test(autonomy), state_of(autonomy)),
        damage=watched_damage(autonomy, now=now),
        **figures,
    )
    expected = out.actions * out.sample_rate
    if not out.sampled and expected >= NOTHING_SAMPLED_EXPECTED:
        out.warnings.append(
            f"Nothing sampled: {out.actions:,} actions ran without a human since the switch "
            f"and none went to periodic review (about {expected:,.0f} expected at "
            f"{pct_bar(out.sample_rate)}). Is the sample_for_periodic_review task running?"
        )
    if out.oldest_waiting and now - out.oldest_waiting > stale:
        out.warnings.append(
            f"Verdicts have stopped: {out.waiting:,} sampled actions wait for periodic review, "
            f"the oldest for {_age(now - out.oldest_waiting)} (more than "
            f"{settings.HITL_MONITOR_STALE_HOURS} h). Without verdicts the gate cannot come back."
        )
    quiet_since = out.last_verdict_at or since
    if out.sampled and not out.warnings and now - quiet_since > stale:
        ran = human_free.filter(decided_at__gt=quiet_since).count()
        if ran:
            what = "No verdict" if out.last_verdict_at else "No verdict yet"
            out.warnings.append(
                f"{what} for {_age(now - quiet_since)} while {ran:,} actions ran without a "
                "human. Without verdicts the gate cannot come back."
            )
    return out
