"""Worlds for the damage-at-stake end-to-end tests, with figures worked out by hand (as in
tests/test_damage.py): one a category is judged on before a switch, one an autonomous category
is watched on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from reviews import rollups, sampling
from reviews.models import Category, CategoryAutonomy, PeriodicReviewItem, ReviewRequest
from reviews.services.autonomy import switch_to_autonomous
from reviews.services.periodic_reviews import record_periodic_review

from .known_truth import bulk

# Readiness world: bound 2,179 EUR a month (see escalations_world).
BLOCKER = (
    "errors cost too much: bound 2,179 EUR against 2,000 EUR accepted: needs about 150 more "
    "reviewed decisions at today's accuracy"
)


def cost_by_amount(category: Category, accepted: float | None) -> None:
    """An error costs the action's amount, in EUR; `accepted` a month."""
    Category.objects.filter(pk=category.pk).update(
        cost_kind=Category.CostKind.ATTRIBUTE,
        cost_attribute="amount",
        cost_unit="EUR",
        accepted_damage=accepted,
    )
    category.refresh_from_db()


def with_amount(requests: list[ReviewRequest], amount: float) -> None:
    ReviewRequest.objects.filter(pk__in=[r.pk for r in requests]).update(
        attributes={"amount": amount}
    )


def escalations_world(agent, category: Category, reviewer) -> Category:
    """Not autonomous: 400 escalations decided by people three days ago, 390 taken as proposed
    (50 EUR each) and 10 not (120 EUR each); a 90% bar, 2,000 EUR accepted a month.

    By hand: lower bound of accuracy 95.5% (meets the bar); 400 a month at the Wilson upper
    bound of 10/400 (4.5402%) is 18.16 errors x 120 EUR = 2,179 EUR, above the 2,000 EUR
    accepted: the damage alone keeps it from ready. 2,500 EUR accepted makes it ready."""
    at = timezone.now() - timedelta(days=3)
    with_amount(bulk(agent, category, ["right"] * 390, at=at, by=reviewer), 50)
    with_amount(bulk(agent, category, ["wrong"] * 10, at=at, by=reviewer), 120)
    rollups.rebuild()
    cost_by_amount(category, accepted=2000)
    CategoryAutonomy.objects.update_or_create(category=category, defaults={"bar": 0.9})
    return category


@dataclass
class Watched:
    """An autonomous category and its sampled actions: `costly` (500 and 300 EUR) first, then
    eight of 60 EUR."""

    category: Category
    costly: list[PeriodicReviewItem]
    routine: list[PeriodicReviewItem]


def autonomous_world(agent, category: Category, manager, *, accepted: float) -> Watched:
    """Switched to autonomous by a manager ten days ago; 300 actions taken without a person five
    days ago (900 a month), all sampled by the real sampling job; `accepted` a month.

    By hand, once the two costly ones are found wrong among ten verdicts: the Wilson lower
    bound of 2/10 is 5.668%, so at least 900 x 5.668% = 51.01 errors a month, each 400 EUR
    (the mean of 500 and 300): 20,405 EUR. One of them alone (1/9 or 1/10) is at most
    900 x 1.989% x 500 = 8,951 EUR. Two errors in ten do not fire the sequential test, so
    only the damage watch can bring the gate back."""
    Category.objects.filter(pk=category.pk).update(sample_rate=1.0)
    category.refresh_from_db()
    switch_to_autonomous(category.pk, by=manager, reason="Ready: 97.5% over 400 escalations")
    CategoryAutonomy.objects.filter(category=category).update(
        autonomous_since=timezone.now() - timedelta(days=10)
    )
    actions = bulk(agent, category, ["auto"] * 300, at=timezone.now() - timedelta(days=5))
    with_amount(actions, 60)
    with_amount(actions[:1], 500)
    with_amount(actions[1:2], 300)
    assert sampling.sample() == 300
    cost_by_amount(category, accepted=accepted)
    items = {
        item.request_id: item
        for item in PeriodicReviewItem.objects.filter(request__in=actions[:10]).select_related(
            "batch"
        )
    }
    ordered = [items[r.pk] for r in actions[:10]]
    return Watched(category, ordered[:2], ordered[2:])


def reason_for(accepted: str) -> str:
    """damage_reason's words for the watched world's two errors in ten verdicts."""
    return (
        "Periodic review found 2 errors in 10 verdicts; over 900 actions a month without a "
        "person that is 51 errors costing at least 20,405 EUR a month at 95% (about 72,000 "
        f"EUR), above the {accepted} EUR accepted; an error costs 400 EUR, the mean of the 2 "
        "errors periodic review found."
    )


def judge(world: Watched, by) -> None:
    """The two costly ones wrong, the other eight right; the errors last."""
    for item in world.routine + world.costly:
        wrong = item in world.costly
        record_periodic_review(
            item.pk,
            by=by,
            verdict="incorrect" if wrong else "correct",
            correction="Deny: outside policy" if wrong else "",
        )
