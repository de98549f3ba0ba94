"""What the errors of a category would cost a month without a person, with its uncertainty.

An error costs the whole action it let through: the cost field of its proposed action (its
amount, or quantity x unit price), or the category's fixed cost per error. The month's damage
is the category's volume a month x its error rate x the mean cost of an error:

- before a switch, the volume is the escalations people decide (what autonomy hands over),
  the error rate is how often people did not take the proposal, and its bound is the same 95%
  Wilson bound as the accuracy's; an error costs the mean of the errors people found, or,
  before any, the mean of the actions;
- while autonomous, the volume is the actions taken without a person and the error rate is
  periodic review's, and the gate comes back once the lower bound passes the accepted damage:
  evidence, as the sequential test is for accuracy, that the month costs too much.

Nothing here writes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber

from .. import rules as engine
from ..models import (
    PEOPLE_CHANNELS,
    QUESTION_DECISIONS,
    Category,
    Decision,
    ReviewRequest,
)
from .stats import wilson

MONTH_DAYS = 30
# Never scale a month from less than a day of traffic: one busy hour is not a month.
MIN_SCALE_DAYS = 1
# The most actions or errors read to average a cost: enough for a steady mean, and bounded.
COST_SAMPLE = 5_000
# The cost kinds read from an action's attributes (the others need no query).
ATTRIBUTE_KINDS = (Category.CostKind.ATTRIBUTE, Category.CostKind.QUANTITY_PRICE)
# Symbols written before the figure; any other unit is written after it ("1,400 EUR").
PREFIX_UNITS = {"$", "€", "£", "¥"}


# --- the cost of one action ------------------------------------------------------------------


def action_cost(category: Category, attributes: Any) -> float | None:
    """What letting this action through wrongly would cost; None when it carries no cost."""
    kind = category.cost_kind
    if kind == Category.CostKind.FIXED:
        return category.cost_per_error
    attrs = attributes if isinstance(attributes, Mapping) else {}
    if kind == Category.CostKind.ATTRIBUTE:
        value = engine.lookup(attrs, None, category.cost_attribute)
        return abs(float(value)) if engine.is_number(value) else None
    if kind == Category.CostKind.QUANTITY_PRICE:
        quantity = engine.lookup(attrs, None, category.cost_attribute)
        price = engine.lookup(attrs, None, category.cost_price_attribute)
        if engine.is_number(quantity) and engine.is_number(price):
            return abs(float(quantity) * float(price))
    return None


def cost_basis(category: Category) -> str:
    """How an error is costed, in words: 'amount (EUR)', '40 USD per error'."""
    unit = f" ({category.cost_unit})" if category.cost_unit else ""
    kind = category.cost_kind
    if kind == Category.CostKind.ATTRIBUTE:
        return f"the action's {category.cost_attribute}{unit}"
    if kind == Category.CostKind.QUANTITY_PRICE:
        return f"{category.cost_attribute} x {category.cost_price_attribute}{unit}"
    if kind == Category.CostKind.FIXED:
        return f"{money(category.cost_per_error or 0.0, category.cost_unit)} per error"
    return "unknown"


# How deep into nested attributes the editor looks for numbers to suggest (order.total).
ATTRIBUTE_DEPTH = 3


def cost_attributes(rows: Iterable[Any]) -> list[str]:
    """The (dotted) attributes of requests' attributes (`rows`) that carry numbers: what the
    policy editor suggests as a cost or unit price attribute."""
    return sorted(
        {
            path
            for attributes in rows
            for path, value in engine.attribute_paths(attributes, ATTRIBUTE_DEPTH)
            if engine.is_number(value)
        }
    )


def money(value: float, unit: str) -> str:
    """$1,400 or 1,400 EUR: whole units from 100 up, two decimals below it."""
    figure = f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.2f}"
    if unit in PREFIX_UNITS:
        return f"{unit}{figure}"
    return f"{figure} {unit}".strip()


def mean_cost(category: Category, attribute_rows: Iterable[Any]) -> tuple[float | None, int, int]:
    """The mean cost over actions' attributes: (mean, how many carried a cost, how many read)."""
    total, costed, read = 0.0, 0, 0
    for attributes in attribute_rows:
        read += 1
        cost = action_cost(category, attributes)
        if cost is not None:
            total, costed = total + cost, costed + 1
    return (total / costed if costed else None), costed, read


# --- the month's damage ----------------------------------------------------------------------


def per_month(count: int, since: datetime, now: datetime) -> float:
    """`count` events since `since`, as a month's worth (MONTH_DAYS days)."""
    days = max((now - since) / timedelta(days=1), MIN_SCALE_DAYS)
    return count * min(MONTH_DAYS / days, MONTH_DAYS / MIN_SCALE_DAYS)


@dataclass
class Damage:
    """A month of a category without a person: errors and what they cost, with 95% bounds.

    `judged` outcomes, `errors` of them wrong, over `volume` actions a month."""

    category: Category
    volume: float
    judged: int
    errors: int
    cost_per_error: float | None  # None: unknown (no cost field, or nothing carried one)
    cost_source: str  # where cost_per_error comes from, in words
    # What the volume counts and where it comes from ("escalations a month (last 30 days)"),
    # and what was judged ("escalations people decided"): the page says what the month rests on.
    volume_what: str = "actions a month"
    judged_what: str = "outcomes judged"

    @property
    def costed(self) -> bool:
        return self.cost_per_error is not None

    @property
    def unit(self) -> str:
        return self.category.cost_unit

    @property
    def accepted(self) -> float | None:
        return self.category.accepted_damage

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.judged if self.judged else None

    @property
    def error_bounds(self) -> tuple[float, float]:
        return wilson(self.errors, self.judged)

    @property
    def errors_expected(self) -> float | None:
        rate = self.error_rate
        return None if rate is None else self.volume * rate

    @property
    def errors_upper(self) -> float:
        return self.volume * self.error_bounds[1]

    @property
    def errors_lower(self) -> float:
        return self.volume * self.error_bounds[0]

    def _cost(self, errors: float | None) -> float | None:
        if errors is None or self.cost_per_error is None:
            return None
        return errors * self.cost_per_error

    @property
    def cost_expected(self) -> float | None:
        return self._cost(self.errors_expected)

    @property
    def cost_upper(self) -> float | None:
        return self._cost(self.errors_upper)

    @property
    def cost_lower(self) -> float | None:
        return self._cost(self.errors_lower)

    @property
    def over_budget(self) -> bool:
        """The upper bound passes the accepted damage: not ready."""
        upper = self.cost_upper
        return self.accepted is not None and upper is not None and upper > self.accepted

    @property
    def evidently_over_budget(self) -> bool:
        """Even the lower bound passes the accepted damage: the gate comes back."""
        lower = self.cost_lower
        return self.accepted is not None and lower is not None and lower > self.accepted

    def money(self, value: float) -> str:
        return money(value, self.unit)

    @property
    def summary(self) -> str:
        """'~12 errors a month, about $1,400; up to $3,900 at 95%'."""
        upper = f"up to {errors_words(self.errors_upper)}"
        if self.errors_expected is None:
            head = f"no outcome judged yet: {upper} a month at 95% (every one of them)"
            if self.cost_upper is not None:
                head += f", {self.money(self.cost_upper)}"
            return head
        head = f"~{errors_words(self.errors_expected)} a month"
        if self.cost_expected is None:
            return f"{head}; {upper} at 95%; cost unknown"
        return (
            f"{head}, about {self.money(self.cost_expected)}; up to "
            f"{self.money(self.cost_upper or 0.0)} at 95%"
        )

    @property
    def budget_words(self) -> str:
        """'bound $3,900 against $2,000 accepted'."""
        if self.accepted is None or self.cost_upper is None:
            return ""
        return f"bound {self.money(self.cost_upper)} against {self.money(self.accepted)} accepted"

    # --- in words, for the pages (reviews.insights.damage is the one place they are said) ---

    @property
    def volume_words(self) -> str:
        """'79 escalations a month (last 30 days)'."""
        return f"{self.volume:,.0f} {self.volume_what}"

    @property
    def rate_words(self) -> str:
        """'15 of 55 escalations people decided were errors: 27.3% (95%: 17.3% to 40.3%)'."""
        if not self.judged:
            return f"no {self.judged_what} yet: at worst every action is an error"
        low, high = self.error_bounds
        return (
            f"{self.errors:,} of {self.judged:,} {self.judged_what} were errors: "
            f"{self.error_rate:.1%} (95%: {low:.1%} to {high:.1%})"
        )

    @property
    def errors_expected_words(self) -> str:
        if self.errors_expected is None:
            return "not known yet"
        return f"~{errors_words(self.errors_expected)}"

    @property
    def errors_upper_words(self) -> str:
        return errors_words(self.errors_upper)

    def _money_or(self, value: float | None) -> str:
        if not self.costed:
            return "cost unknown"
        return "not known yet" if value is None else self.money(value)

    @property
    def cost_expected_words(self) -> str:
        return self._money_or(self.cost_expected)

    @property
    def cost_upper_words(self) -> str:
        return self._money_or(self.cost_upper)

    @property
    def cost_words(self) -> str:
        """How an error is costed and where the figure comes from: '3,091 EUR: the action's
        amount (EUR), the mean of the 15 errors people found'."""
        basis = cost_basis(self.category)
        if self.cost_per_error is None:
            if not self.category.cost_kind:
                return "unknown: no cost is set for this category"
            return f"unknown: {self.cost_source}"
        if self.category.cost_kind == Category.CostKind.FIXED:
            return basis
        return f"{self.money(self.cost_per_error)}: {basis}, {self.cost_source}"

    @property
    def accepted_shown(self) -> str:
        return "" if self.accepted is None else self.money(self.accepted)

    @property
    def accepted_note(self) -> str:
        """Where the 95% bound stands against the accepted damage, in a few words."""
        if self.accepted is None:
            return "accuracy alone"
        if self.cost_upper is None:
            return "cost not known yet"
        return "bound over it" if self.over_budget else "bound within it"

    @property
    def risk_words(self) -> str:
        """What an uncosted error can reach: 'medium blast radius, irreversible'."""
        category = self.category
        return (
            f"{category.get_blast_radius_display().lower()} blast radius, "
            f"{category.get_reversibility_display().lower()}"
        )

    @property
    def accepted_words(self) -> str:
        """The accepted damage and where the bound stands against it; or why there is none."""
        if self.accepted is None:
            if not self.category.cost_kind:
                return "none: errors are not costed, so readiness rests on accuracy alone"
            return "no accepted damage set: readiness rests on accuracy alone"
        accepted = f"{self.money(self.accepted)} a month"
        upper = self.cost_upper
        if upper is None:
            return f"{accepted}; the errors' cost is not known yet"
        if upper > self.accepted:
            return f"{accepted}: the 95% bound is {self.money(upper - self.accepted)} over it"
        return f"{accepted}: within it, {self.money(self.accepted - upper)} to spare at worst"

    @property
    def watch_words(self) -> str:
        """While autonomous: where the month stands against the accepted damage, and what
        brings the gate back."""
        if self.accepted is None:
            if not self.category.cost_kind:
                return "errors are not costed: only the accuracy test brings the gate back"
            return "no accepted damage set: only the accuracy test brings the gate back"
        accepted = self.money(self.accepted)
        if self.cost_lower is None:
            return f"the gate comes back once the month's 95% lower bound passes {accepted}"
        lower = self.money(self.cost_lower)
        if self.evidently_over_budget:
            return f"lower bound {lower} is above the {accepted} accepted: the gate comes back"
        return (
            f"the gate comes back once the month's 95% lower bound passes {accepted} "
            f"(now {lower}, {self.money(self.accepted - self.cost_lower)} below it)"
        )

    @property
    def watch_summary(self) -> str:
        """'~10 errors a month, about 1,200 EUR; at least 405 EUR at 95%'."""
        if self.errors_expected is None:
            return "no verdict yet: nothing to project"
        head = f"~{errors_words(self.errors_expected)} a month"
        if self.cost_expected is None:
            return f"{head}; at least {errors_words(self.errors_lower)} at 95%; cost unknown"
        return (
            f"{head}, about {self.money(self.cost_expected)}; at least "
            f"{self.money(self.cost_lower or 0.0)} at 95%"
        )

    def target_accuracy(self) -> float | None:
        """The accuracy at which the damage bound would meet the accepted figure."""
        if self.accepted is None or not self.cost_per_error or not self.volume:
            return None
        return 1 - self.accepted / (self.volume * self.cost_per_error)


def errors_words(value: float) -> str:
    n = round(value, 1) if value < 10 else round(value)
    shown = f"{n:,.1f}".rstrip("0").rstrip(".") if value < 10 else f"{n:,}"
    return f"{shown} error{'' if shown == '1' else 's'}"


def decisions_needed(ok: int, n: int, target: float) -> int | None:
    """How many more decisions, at today's accuracy (ok of n), until the 95% Wilson lower
    bound reaches `target`. None when today's accuracy never gets there (or nothing to go on);
    0 when it is already there."""
    if n <= 0 or target <= 0:
        return 0 if target <= 0 else None
    accuracy = ok / n
    if accuracy <= target:
        return None if wilson(ok, n)[0] < target else 0
    if wilson(ok, n)[0] >= target:
        return 0

    def reaches(total: int) -> bool:
        return wilson(accuracy * total, total)[0] >= target

    high = max(n, 1) * 2
    while not reaches(high):
        high *= 2
        if high > 10**12:
            return None
    low = n
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reaches(middle) else (middle, high)
    return high - n


def about(n: int) -> str:
    """A round figure for 'about N more': two significant digits."""
    if n < 100:
        return f"{n:,}"
    digits = 10 ** (int(math.log10(n)) - 1)
    return f"{round(n / digits) * digits:,}"


# --- the figures, from the database ----------------------------------------------------------


def escalations_a_month(now: datetime) -> dict[int, float]:
    """Per category, the requests that went to people over the last MONTH_DAYS days: what a
    switch to autonomous would hand to the agent. One query for every category."""
    since = now - timedelta(days=MONTH_DAYS)
    rows = (
        ReviewRequest.objects.filter(
            created_at__gte=since,
            created_at__lt=now,
            verdict__in=[engine.GATE, engine.ESCALATE],
            is_check=False,
        )
        .exclude(allowed_decisions=QUESTION_DECISIONS)
        .order_by()
        .values("category_id")
        .annotate(n=Count("id"))
    )
    return {row["category_id"]: float(row["n"]) for row in rows}


@dataclass(frozen=True)
class Evidence:
    """What a category's readiness rests on: `judged` escalations since `since`, `errors` of
    them not taken as proposed."""

    category: Category
    since: datetime
    judged: int
    errors: int


def damages_at_stake(
    evidence: list[Evidence], now: datetime, volumes: dict[int, float] | None = None
) -> dict[int, Damage]:
    """Categories not yet autonomous: each one's escalations a month at the error rate people
    found on them; an error costs the mean of those people found, or, before any, the mean of
    the escalated actions of the last month. At most three queries, whatever the number of
    categories."""
    volumes = escalations_a_month(now) if volumes is None else volumes
    read = [e for e in evidence if e.category.cost_kind in ATTRIBUTE_KINDS]
    found: dict[int, list] = {}
    if read:
        windows = Q()
        for e in read:
            windows |= Q(request__category_id=e.category.pk, created_at__gte=e.since)
        found = _newest_per_category(
            Decision.objects.filter(
                windows,
                channel__in=PEOPLE_CHANNELS,
                as_proposed=False,
                created_at__lte=now,
                request__is_check=False,
            ).exclude(request__allowed_decisions=QUESTION_DECISIONS),
            "request__category_id",
            "request__attributes",
        )
    bare = [
        e.category.pk for e in read if mean_cost(e.category, found.get(e.category.pk, []))[1] == 0
    ]
    escalated = (
        _newest_per_category(
            ReviewRequest.objects.filter(
                category_id__in=bare,
                created_at__gte=now - timedelta(days=MONTH_DAYS),
                verdict__in=[engine.GATE, engine.ESCALATE],
                is_check=False,
            ),
            "category_id",
            "attributes",
        )
        if bare
        else {}
    )
    out = {}
    for e in evidence:
        pk = e.category.pk
        cost, source = cost_per_error(
            e.category,
            found.get(pk, []),
            escalated.get(pk, []),
            found_by="people",
            what="escalated action",
        )
        volume = volumes.get(pk, 0.0)
        out[pk] = Damage(
            e.category,
            volume,
            e.judged,
            e.errors,
            cost,
            source,
            volume_what=f"escalation{'' if round(volume) == 1 else 's'} a month "
            f"(last {MONTH_DAYS} days)",
            judged_what="escalations people decided",
        )
    return out


def at_stake(
    category: Category, *, since: datetime, judged: int, errors: int, volume: float, now: datetime
) -> Damage:
    """One category's month at stake (see damages_at_stake), at a given volume."""
    evidence = [Evidence(category, since, judged, errors)]
    return damages_at_stake(evidence, now, {category.pk: volume})[category.pk]


def _newest_per_category(rows: Any, category: str, attributes: str) -> dict[int, list]:
    """Each category's newest COST_SAMPLE attributes of `rows`, in one query."""
    ranked = rows.annotate(
        rank=Window(RowNumber(), partition_by=[F(category)], order_by=F("created_at").desc())
    ).filter(rank__lte=COST_SAMPLE)
    out: dict[int, list] = {}
    for key, value in ranked.values_list(category, attributes):
        out.setdefault(key, []).append(value)
    return out


def cost_per_error(
    category: Category, errors: Any, actions: Any, *, found_by: str, what: str
) -> tuple[float | None, str]:
    """What one error costs, and where that figure comes from: the category's fixed cost; or
    the mean cost of the errors found (querysets of attributes, newest first); or, before any
    error carried a cost, the mean cost of the actions."""
    if category.cost_kind == Category.CostKind.FIXED and category.cost_per_error is not None:
        return category.cost_per_error, "the category's fixed cost per error"
    if not category.cost_kind:
        return None, "no cost field is set"
    cost, costed, _ = mean_cost(category, errors[:COST_SAMPLE])
    if cost is not None:
        plural = "s" if costed != 1 else ""
        return cost, f"the mean of the {costed:,} error{plural} {found_by} found"
    cost, costed, _ = mean_cost(category, actions[:COST_SAMPLE])
    if cost is not None:
        plural = "s" if costed != 1 else ""
        return cost, f"the mean of {costed:,} {what}{plural} (no error found yet)"
    return None, f"no action carries {cost_basis(category)}"
