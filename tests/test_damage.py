"""What a category's errors would cost a month without a person, tested on worlds whose figures
are worked out by hand, and the two things the figure does: it keeps a category from "ready",
and it brings the gate back on an autonomous one."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from reviews import rollups
from reviews.insights.damage import action_cost, decisions_needed, money
from reviews.insights.readiness import readiness_of
from reviews.insights.stats import wilson
from reviews.models import (
    AuditEvent,
    Category,
    CategoryAutonomy,
)
from reviews.monitoring import watched_damage
from reviews.services.autonomy import catch_up

from .damage_support import autonomous_world, judge, reason_for, with_amount
from .known_truth import bulk

pytestmark = pytest.mark.django_db


def costed(category, accepted=None, bar=None):
    category.cost_kind = Category.CostKind.ATTRIBUTE
    category.cost_attribute = "amount"
    category.cost_unit = "EUR"
    category.accepted_damage = accepted
    category.save()
    if bar is not None:
        CategoryAutonomy.objects.update_or_create(category=category, defaults={"bar": bar})
    return category


def state_of(category):
    (state,) = readiness_of(category_id=category.pk)
    return state


@pytest.fixture
def world(agent, refunds, alice):
    """400 escalations in the last month, decided by people three days ago: 390 taken as
    proposed (50 EUR each), 10 not (120 EUR each).

    By hand: 400 a month at 10/400 = 2.5% is 10 errors, each 120 EUR (the mean of the errors
    found): 1,200 EUR. The 95% Wilson interval of 10/400 is 1.3635% to 4.5402%, so at worst
    400 x 4.5402% = 18.16 errors, 18.16 x 120 = 2,179.30 EUR."""
    at = timezone.now() - timedelta(days=3)
    right = bulk(agent, refunds, ["right"] * 390, at=at, by=alice)
    wrong = bulk(agent, refunds, ["wrong"] * 10, at=at, by=alice)
    with_amount(right, 50)
    with_amount(wrong, 120)
    rollups.rebuild()
    return refunds


def test_a_known_world_gives_the_expected_errors_and_cost_and_their_bound_exactly(world):
    costed(world, accepted=5000)
    damage = state_of(world).damage
    assert damage.volume == 400 and (damage.judged, damage.errors) == (400, 10)
    assert damage.errors_expected == pytest.approx(10.0)
    assert damage.cost_per_error == pytest.approx(120.0)
    assert damage.cost_source == "the mean of the 10 errors people found"
    assert damage.cost_expected == pytest.approx(1200.0)
    assert damage.errors_upper == pytest.approx(18.1608, abs=1e-3)
    assert damage.cost_upper == pytest.approx(2179.30, abs=0.01)
    assert damage.summary == "~10 errors a month, about 1,200 EUR; up to 2,179 EUR at 95%"
    assert not damage.over_budget


def test_damage_above_the_accepted_figure_keeps_a_category_from_ready_and_says_how_far(world):
    # A 90% bar the accuracy meets (lower bound 95.5%): the damage alone decides.
    costed(world, accepted=2000, bar=0.9)
    state = state_of(world)
    assert state.lower >= 0.9 and state.damage.over_budget and not state.ready
    # At 97.5% the bound meets 2,000 EUR once it shows 1 - 2000 / (400 x 120) = 95.83%:
    # 153 more decisions, said as about 150.
    assert decisions_needed(390, 400, 1 - 2000 / (400 * 120)) == 153
    assert state.blockers == [
        "errors cost too much: bound 2,179 EUR against 2,000 EUR accepted: needs about 150 "
        "more reviewed decisions at today's accuracy"
    ]
    costed(world, accepted=2500, bar=0.9)
    assert state_of(world).ready


def test_an_accuracy_that_never_reaches_the_bar_says_so(world):
    costed(world, accepted=100)  # 1 - 100 / 48,000 = 99.8% needed; today 97.5%
    blockers = state_of(world).blockers
    assert any(
        b.startswith("errors cost too much: bound 2,179 EUR against 100 EUR accepted: at today's "
                     "accuracy (97.5%) no number of decisions gets there")
        for b in blockers
    ), blockers  # fmt: skip


def test_before_any_error_an_error_costs_the_mean_escalated_action(agent, refunds, alice):
    at = timezone.now() - timedelta(days=2)
    with_amount(bulk(agent, refunds, ["right"] * 30, at=at, by=alice), 40)
    with_amount(bulk(agent, refunds, ["right"] * 10, at=at, by=alice), 80)
    rollups.rebuild()
    damage = state_of(costed(refunds)).damage
    # (30 x 40 + 10 x 80) / 40 = 50 EUR; no error yet, so ~0 expected, the bound from 0/40.
    assert damage.cost_per_error == pytest.approx(50.0)
    assert damage.cost_source == "the mean of 40 escalated actions (no error found yet)"
    assert damage.errors_expected == 0
    assert damage.errors_upper == pytest.approx(40 * wilson(0, 40)[1])


def test_a_category_without_a_cost_counts_errors_and_says_the_cost_is_unknown(world):
    state = state_of(world)
    assert state.damage.cost_per_error is None and not state.damage.over_budget
    assert state.damage.summary == "~10 errors a month; up to 18 errors at 95%; cost unknown"


def test_each_way_of_costing_an_action(refunds):
    refunds.cost_kind, refunds.cost_attribute = Category.CostKind.ATTRIBUTE, "order.total"
    assert action_cost(refunds, {"order": {"total": -75.5}}) == 75.5
    assert action_cost(refunds, {"order": {"total": "75"}}) is None  # text is no amount
    assert action_cost(refunds, {"order": {"total": True}}) is None
    refunds.cost_kind = Category.CostKind.QUANTITY_PRICE
    refunds.cost_attribute, refunds.cost_price_attribute = "quantity", "unit_price"
    assert action_cost(refunds, {"quantity": 12, "unit_price": 2.5}) == 30.0
    assert action_cost(refunds, {"quantity": 12}) is None
    refunds.cost_kind, refunds.cost_per_error = Category.CostKind.FIXED, 40.0
    assert action_cost(refunds, {}) == 40.0
    assert money(1400, "$") == "$1,400" and money(12.5, "EUR") == "12.50 EUR"


def test_the_database_refuses_a_budget_without_a_cost_and_a_negative_cost(refunds):
    refunds.accepted_damage = 1000
    with pytest.raises(IntegrityError), transaction.atomic():
        refunds.save()
    refunds.refresh_from_db()
    refunds.cost_kind, refunds.cost_per_error = Category.CostKind.FIXED, -1
    with pytest.raises(IntegrityError), transaction.atomic():
        refunds.save()


# --- while autonomous: the damage watch -------------------------------------------------------


def test_a_month_of_sampled_errors_evidently_over_the_budget_brings_the_gate_back(
    agent, refunds, manager, alice
):
    """The watched world (tests/damage_support.py): at least 20,405 EUR a month at 95%, above
    the 20,000 EUR accepted; two errors in ten do not fire the sequential test."""
    world = autonomous_world(agent, refunds, manager, accepted=20_000)
    judge(world, alice)
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.GATE
    autonomy = CategoryAutonomy.objects.get(category=refunds)
    assert autonomy.verdicts == 10 and autonomy.errors == 2
    assert autonomy.reinstated_reason == reason_for("20,000")
    event = AuditEvent.objects.get(verb="category.reinstated")
    assert event.note == autonomy.reinstated_reason


def test_sampled_errors_within_the_budget_leave_the_category_autonomous(
    agent, refunds, manager, alice
):
    world = autonomous_world(agent, refunds, manager, accepted=21_000)
    judge(world, alice)
    refunds.refresh_from_db()
    assert refunds.mode == Category.Mode.AUTONOMOUS
    autonomy = CategoryAutonomy.objects.get(category=refunds)
    damage = watched_damage(autonomy, now=autonomy.autonomous_since + timedelta(days=10))
    assert damage.volume == pytest.approx(900)
    assert damage.cost_lower == pytest.approx(20405.14, abs=0.01)
    # An admin who lowers the accepted figure brings the gate back at the next sweep.
    Category.objects.filter(pk=refunds.pk).update(accepted_damage=15_000)
    assert catch_up(refunds.pk)
    assert Category.objects.get(pk=refunds.pk).mode == Category.Mode.GATE


def test_the_scorecard_command_prints_the_month_without_a_person(world):
    costed(world, accepted=2000, bar=0.9)
    out = io.StringIO()
    call_command("scorecard", "--category", "refunds", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Refunds (refunds): Rules: a human when a rule fires"
    assert (
        "  a month without a person: ~10 errors a month, about 1,200 EUR; up to 2,179 EUR at 95%"
    ) in lines
    assert "  volume: 400 escalations a month (last 30 days)" in lines
    assert (
        "  an error costs: 120 EUR: the action's amount (EUR), the mean of the 10 errors "
        "people found"
    ) in lines
    assert lines[-1].startswith("  not ready: errors cost too much: bound 2,179 EUR against")
    with pytest.raises(CommandError, match="No category 'nope'"):
        call_command("scorecard", "--category", "nope")


def test_the_scorecard_command_says_what_an_uncosted_category_puts_at_stake(world):
    out = io.StringIO()
    call_command("scorecard", "--category", "refunds", stdout=out)
    lines = out.getvalue().splitlines()
    assert (
        "  a month without a person: ~10 errors a month; up to 18 errors at 95%; cost unknown"
        in lines
    )
    assert f"  at stake: {world.get_blast_radius_display().lower()} blast radius, " in "\n".join(
        lines
    )
