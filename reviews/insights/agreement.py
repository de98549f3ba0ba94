"""Reviewer agreement: how often a second, blind reviewer reached the first one's outcome.

Second reviews are a small sample (a few percent of human decisions), grouped in the database:
the page reads one row per category, reviewer pair and outcome pair, however many there are."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from ..models import (
    Category,
    Decision,
    FourEyesStep,
    ReviewRequest,
    SecondReview,
)
from .periods import Period
from .stats import share, wilson

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


def agreement_report(period: Period, category_id: int | None = None) -> AgreementReport:
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


@dataclass
class PairAgreement:
    """Four eyes (services.four_eyes) in one category: how often the blind confirmation
    agreed with the first decision, and how many disagreements a third person settled."""

    label: str
    n: int = 0  # confirmations given
    agreed: int = 0
    settled: int = 0  # disagreements a third reviewer decided
    waiting: int = 0  # first decisions now awaiting a confirmation

    @property
    def rate(self) -> float | None:
        return share(self.agreed, self.n)

    @property
    def lower(self) -> float:
        return wilson(self.agreed, self.n)[0]


def four_eyes_report(period: Period, category_id: int | None = None) -> list[PairAgreement]:
    """Per four-eyes category (or one with steps in the period): confirmations given in the
    period and how many agreed, the disagreements settled by a third person, and the first
    decisions waiting now. One statement, a count per figure and category."""
    start, end = period.bounds
    steps = FourEyesStep.objects.filter(
        request__category=OuterRef("pk"),
        request__is_check=False,
        created_at__gte=start,
        created_at__lt=end,
    )
    # A first decision on the current proposal that no confirmation followed yet.
    waiting = FourEyesStep.objects.filter(
        request__category=OuterRef("pk"),
        role="first",
        request__status=ReviewRequest.Status.PENDING,
        proposal_version=F("request__proposal_version"),
    ).exclude(
        Exists(
            FourEyesStep.objects.filter(
                request=OuterRef("request"),
                proposal_version=OuterRef("proposal_version"),
                role="second",
            )
        )
    )
    categories = Category.objects.filter(Q(four_eyes=True) | Exists(steps))
    if category_id:
        categories = categories.filter(pk=category_id)
    rows = categories.order_by("name").annotate(
        n=_count(steps.filter(role="second")),
        agreed=_count(steps.filter(role="second", agrees=True)),
        settled=_count(steps.filter(role="third")),
        waiting=_count(waiting),
    )
    return [
        PairAgreement(c.name, n=c.n, agreed=c.agreed, settled=c.settled, waiting=c.waiting)
        for c in rows
    ]


def _count(qs: Any) -> Coalesce:
    """The number of rows of a subquery correlated with the category (0 for none)."""
    return Coalesce(
        Subquery(
            qs.order_by().values("request__category").annotate(c=Count("id")).values("c")[:1],
            output_field=IntegerField(),
        ),
        0,
    )
