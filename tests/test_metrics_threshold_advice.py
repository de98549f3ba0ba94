"""Threshold advice is conservative: a looser threshold is suggested only when every step it
hands to the agent was right at the category's bar on its own, with 95% confidence."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews import advice, rollups
from reviews.insights.periods import period_from
from reviews.insights.stats import wilson, zero_error_sample
from reviews.insights.summaries import Summary
from reviews.models import CategoryAutonomy, EscalationRule

from .conftest import ROUTINE
from .metrics_helpers import decided

BUCKETS = 20


def buckets(**counts: tuple[int, int]) -> tuple[list[int], list[int]]:
    """conf_n and conf_ok from {"b13": (n, ok)}: bucket 13 is confidence 0.65 to 0.7."""
    conf_n, conf_ok = [0] * BUCKETS, [0] * BUCKETS
    for name, (n, ok) in counts.items():
        conf_n[int(name[1:])], conf_ok[int(name[1:])] = n, ok
    return conf_n, conf_ok


def draw(rng: random.Random, n: int, right: float) -> int:
    return sum(rng.random() < right for _ in range(n))


def test_a_step_needs_381_decisions_without_an_error_to_show_99_percent():
    assert zero_error_sample(0.99) == 381
    assert zero_error_sample(0.95) == 73
    assert zero_error_sample(1.0) is None
    # The bound it rests on: 380 of 380 is not enough, 381 of 381 is.
    assert advice.Step(0.7, 0.65, 380, 380).clears(0.99) is False
    assert advice.Step(0.7, 0.65, 381, 381).clears(0.99) is True


def test_a_dirty_marginal_bucket_stops_the_walk_however_clean_the_band_around_it():
    # 0.65 to 0.7 clean, 13 of 13 changed between 0.6 and 0.65, a big clean bulk below: the
    # band 0.55 to 0.7 as a whole is 99.5% right, yet only 0.65 is handed over.
    conf_n, conf_ok = buckets(b13=(1000, 1000), b12=(13, 0), b11=(2000, 2000))
    walk = advice.confidence_walk(conf_n, conf_ok, 0.7, bar=0.99, min_n=50)
    assert walk.suggested == 0.65
    assert (walk.n, walk.ok, walk.steps) == (1000, 1000, 1)


def test_a_dirty_bucket_next_to_the_threshold_gives_no_suggestion():
    conf_n, conf_ok = buckets(b13=(13, 0), b12=(3000, 3000))
    walk = advice.confidence_walk(conf_n, conf_ok, 0.7, bar=0.99, min_n=50)
    assert walk.suggested is None
    assert walk.nearest == advice.Step(0.7, 0.65, 13, 0)


def test_an_empty_bucket_stops_the_walk():
    conf_n, conf_ok = buckets(b13=(500, 500), b11=(3000, 3000))
    assert advice.confidence_walk(conf_n, conf_ok, 0.7, 0.99, 50).suggested == 0.65


def test_every_clean_step_is_handed_over():
    conf_n, conf_ok = buckets(b13=(900, 899), b12=(700, 700), b11=(900, 899))
    walk = advice.confidence_walk(conf_n, conf_ok, 0.7, bar=0.99, min_n=50)
    assert walk.suggested == 0.55 and (walk.n, walk.ok, walk.steps) == (2500, 2498, 3)


def test_a_band_truly_97_percent_right_with_50_decisions_is_almost_never_loosened():
    """200 seeded draws of 50 decisions, 97% right: raw rate >= 99% happens about 22% of the
    time by luck (all 50 right); a suggestion must come in under 1% of them."""
    rng = random.Random(20260)
    rule = EscalationRule(field="policy_conflict", operator="is_true")
    loosened = 0
    for _ in range(200):
        ok = draw(rng, 50, 0.97)
        conf_n, conf_ok = buckets(b13=(50, ok))
        walk = advice.confidence_walk(conf_n, conf_ok, 0.7, 0.99, 50)
        values = [(10_001.0 + i, rng.random() < 0.97) for i in range(50)]
        numeric = advice.attribute_walk(values, "gt", 10_000, 0.99, 50)
        summary = Summary(approved=ok, modified=50 - ok)
        whole = advice.advise(rule, summary, 0.99, 50)
        loosened += walk.suggested is not None or numeric.suggested is not None
        loosened += whole.kind == "loosen"
    assert loosened < 2  # under 1% of 200


def test_a_band_truly_98_percent_right_over_thousands_is_almost_never_loosened():
    rng = random.Random(7)
    loosened = 0
    for _ in range(200):
        counts = {f"b{b}": (600, draw(rng, 600, 0.98)) for b in (11, 12, 13)}
        conf_n, conf_ok = buckets(**counts)
        loosened += advice.confidence_walk(conf_n, conf_ok, 0.7, 0.99, 50).suggested is not None
    assert loosened < 2


def test_a_step_truly_at_the_bar_clears_it_at_most_2_5_percent_of_the_time():
    """Exact binomial tails, no draws: how often a step of n decisions, each right with
    probability p, has a 95% Wilson lower bound at or above a 99% bar."""

    def clears(n: int, p: float) -> float:
        least = next((k for k in range(n + 1) if wilson(k, n)[0] >= 0.99), None)
        if least is None:
            return 0.0
        return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(least, n + 1))

    for n in (381, 500, 1000, 2000, 5000):
        assert clears(n, 0.99) <= 0.025
        assert clears(n, 0.985) <= 0.005
        assert clears(n, 0.97) < 1e-4


def test_a_band_truly_999_per_mille_right_is_usually_loosened():
    """Conservative, not useless: with enough decisions a truly clean band is advised."""
    rng = random.Random(11)
    loosened = 0
    for _ in range(200):
        counts = {f"b{b}": (1500, draw(rng, 1500, 0.999)) for b in (12, 13)}
        conf_n, conf_ok = buckets(**counts)
        loosened += advice.confidence_walk(conf_n, conf_ok, 0.7, 0.99, 50).suggested == 0.6
    assert loosened > 180


def test_a_suggestion_never_rests_on_fewer_decisions_than_the_minimum():
    # At a 50% bar four right decisions clear a step; the minimum sample still holds.
    conf_n, conf_ok = buckets(b13=(10, 10), b12=(10, 10))
    assert advice.confidence_walk(conf_n, conf_ok, 0.7, bar=0.5, min_n=50).suggested is None
    assert advice.confidence_walk(conf_n, conf_ok, 0.7, bar=0.5, min_n=20).suggested == 0.6
    values = [(10_001.0 + i, True) for i in range(40)]
    assert advice.attribute_walk(values, "gt", 10_000, bar=0.5, min_n=50).suggested is None


def test_a_numeric_band_is_walked_in_steps_and_stops_at_a_dirty_one():
    # Steps of 381 (99% bar): 10,001 … 10,381 clean, the next 381 with 13 changes, then clean.
    values = [(10_000.0 + i, not (400 <= i < 413)) for i in range(1, 1500)]
    walk = advice.attribute_walk(values, "gt", 10_000, bar=0.99, min_n=50)
    assert walk.suggested == 10_381 and walk.n == 381 and walk.steps == 1


def test_a_rounded_numeric_suggestion_still_clears_every_step():
    values = [(10_000.0 + i * 3, True) for i in range(1, 900)]  # 10,003 … 12,697
    walk = advice.attribute_walk(values, "gt", 10_000, bar=0.99, min_n=50)
    # Two steps of 381 end at 12,286; a person would type 12,000, which hands over 666 of
    # them: one step of 381 and the rest joined to it, each clean.
    assert walk.suggested == 12_000 and walk.n == 666


# --- through the page ------------------------------------------------------------------------


def advice_page(client, manager, **params) -> str:
    client.force_login(manager)
    return client.get(reverse("metrics_advice"), params).content.decode()


def confident(agent, category, alice, n: int, outcome: str = "approved", confidence=0.66):
    for _ in range(n):
        decided(agent, category, outcome, by=alice, confidence=confidence, attributes=ROUTINE)


@pytest.mark.django_db
def test_the_page_says_a_clean_but_small_band_needs_381_decisions(
    client, manager, agent, refunds, alice
):
    """50 of 50 approved as proposed is what a 97%-right band shows 22% of the time."""
    confident(agent, refunds, alice, 50)
    rollups.roll_up()
    page = advice_page(client, manager)
    assert "could loosen" not in page
    assert (
        "The step next to the threshold (confidence 0.65 to 0.7) has 50 decisions without an "
        "error; it needs 381 to show 99% with 95% confidence."
    ) in page
    assert "At the 99% bar a step needs 381 decisions without an error to show it." in page


@pytest.mark.django_db
def test_a_category_bar_of_95_percent_gets_advice_99_would_refuse(
    client, manager, agent, refunds, alice
):
    confident(agent, refunds, alice, 80)
    rollups.roll_up()
    assert "consider moving the threshold" not in advice_page(client, manager)
    CategoryAutonomy.objects.create(category=refunds, bar=0.95)
    page = advice_page(client, manager)
    rule = EscalationRule.objects.get(category=refunds, field="confidence")
    assert (
        "100.0% of 80 escalations with 0.65 ≤ confidence &lt; 0.7 were approved as proposed, "
        "and each 0.05 step (1 step) was at least 95% with 95% confidence"
    ) in page
    assert "consider moving the threshold from 0.7 to 0.65." in page
    assert "bar 95% (the category's own)" in page
    assert f"/policies/refunds/edit/?rule={rule.pk}&amp;value=0.65" in page


@pytest.mark.django_db
def test_a_rule_of_every_category_uses_the_global_bar(client, manager, agent, refunds, alice):
    CategoryAutonomy.objects.create(category=refunds, bar=0.95)
    EscalationRule.objects.create(category=None, field="confidence", operator="lt", value=0.7)
    confident(agent, refunds, alice, 80)
    rollups.roll_up()
    found = {
        a.rule.category_id: a
        for a in advice.threshold_advice(period_from({}))
        if a.rule.field == "confidence"
    }
    assert found[refunds.pk].kind == "loosen" and found[refunds.pk].bar == 0.95
    assert found[None].kind == "insufficient" and found[None].bar == 0.99


@pytest.mark.django_db
def test_too_few_decisions_say_what_is_needed(client, manager, agent, refunds, alice):
    confident(agent, refunds, alice, 9)
    rollups.roll_up()
    page = advice_page(client, manager)
    assert (
        "Too few decisions to advise: n = 9 (needs 50). Showing 99% with 95% confidence takes "
        "381 decisions without an error in each step."
    ) in page


@pytest.mark.django_db
def test_the_page_says_what_it_counts_and_leaves_timeouts_out(
    client, manager, agent, refunds, alice
):
    confident(agent, refunds, alice, 3)
    a_day_ago = timezone.now() - timedelta(days=1)  # its deadline long past
    decided(agent, refunds, "timeout", at=a_day_ago, confidence=0.66, attributes=ROUTINE)
    rollups.roll_up()
    page = advice_page(client, manager)
    assert "What this counts: Decisions by people in the period on each rule" in page
    assert "approved as proposed (unchanged, with the recommended option)" in page
    assert "1 timed-out decision: no one&#x27;s judgement, never counted" in page
    assert "n = 3 · 1 timed out, not counted" in page


def test_a_clean_step_too_small_for_the_minimum_says_so():
    rule = EscalationRule(field="confidence", operator="lt", value=0.7)
    conf_n, conf_ok = buckets(b13=(40, 40), b12=(10, 9))
    summary = Summary(approved=49, modified=1, conf_n=conf_n, conf_ok=conf_ok)
    found = advice.advise(rule, summary, bar=0.9, min_n=50)
    assert found.kind == "insufficient" and found.suggested is None
    assert "clears the 90% bar, but the steps that do hold fewer than the 50 decisions" in (
        found.text
    )


@pytest.mark.django_db
def test_the_page_stops_at_a_dirty_marginal_band(client, manager, agent, refunds, alice):
    CategoryAutonomy.objects.create(category=refunds, bar=0.9)  # a step needs 35 clean
    confident(agent, refunds, alice, 60, confidence=0.66)
    confident(agent, refunds, alice, 13, "modified", confidence=0.61)
    confident(agent, refunds, alice, 40, confidence=0.56)
    rollups.roll_up()
    page = advice_page(client, manager)
    assert "consider moving the threshold from 0.7 to 0.65." in page
    assert "to 0.6." not in page and "to 0.55." not in page
