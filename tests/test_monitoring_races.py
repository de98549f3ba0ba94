"""Verdicts that land at once each move the sequential test once, and the gate comes back
once: real concurrent transactions on PostgreSQL."""

import pytest

from reviews import sampling
from reviews.models import AuditEvent, Category, CategoryAutonomy, PeriodicReviewItem
from reviews.services.autonomy import switch_to_autonomous
from reviews.services.periodic_reviews import record_periodic_review

from .test_monitoring import auto_approved
from .test_races import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def verdict(item, by, said="incorrect"):
    return lambda: record_periodic_review(item.pk, by=by, verdict=said, correction="Deny it")


def test_concurrent_verdicts_each_count_and_the_gate_comes_back_once(
    agent, refunds, manager, alice, carol
):
    refunds.sample_rate = 1.0
    refunds.save()
    switch_to_autonomous(refunds.pk, by=manager, reason="Ready")
    refunds.refresh_from_db()
    auto_approved(agent, refunds, 12)
    sampling.sample()
    items = list(PeriodicReviewItem.objects.order_by("id"))

    round_one = [verdict(items[0], alice), verdict(items[1], carol)]
    round_one += [verdict(item, alice, "correct") for item in items[2:10]]
    assert not [r for r in run_together(*round_one) if isinstance(r, Exception)]
    autonomy = CategoryAutonomy.objects.get(category=refunds)
    assert (autonomy.verdicts, autonomy.errors, autonomy.run_errors) == (10, 2, 2)  # none lost
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.AUTONOMOUS

    results = run_together(verdict(items[10], alice), verdict(items[11], carol))
    assert not [r for r in results if isinstance(r, Exception)]
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.GATE
    assert AuditEvent.objects.filter(verb="category.reinstated").count() == 1
    autonomy.refresh_from_db()
    # The third error brought the gate back; the verdict after it found the period closed.
    assert autonomy.verdicts == 11 and autonomy.ended_at is not None
    assert PeriodicReviewItem.objects.filter(verdict="incorrect").count() == 4
